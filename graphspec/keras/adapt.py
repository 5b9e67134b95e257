"""Adapting a built model's preprocessing layers on the training split, before `fit`.

Which nodes adapt, and what `validate` checks of them, is in `graphspec/spec/adapt.py`. Here each
adapted layer, in build order, is given what reaches it in the graph: the training split's
inputs, run through the sub-model between the spec's inputs and the layer when there are nodes
between (in inference mode: no dropout, no augmentation). Those nodes must have no weights that
training changes, or the state the layer learned would describe tensors the trained model never
makes; an adapted layer before it has been adapted already.

The data comes batch by batch from an `InputBatches` (one pass per adapted layer), and Keras's
`adapt` accumulates over the batches (a running mean and variance, token counts, quantile
summaries): memory holds one batch and the state, not the split. The adapted state is Keras's own
(variables, a lookup's vocabulary in the file's assets, a Discretization's boundaries in its
config), so `model.keras` predicts from raw values in stock Keras.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec.errors import SpecErrors
from graphspec.graph import build_order, reference_target
from graphspec.spec.adapt import adapted_nodes
from graphspec.spec.model import REFERENCE

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# Batches of the training split's inputs, given the names of the inputs wanted and at most how
# many examples (None: all), each batch a dict of arrays by input name.
InputBatches = Callable[[list[str], int | None], Iterator[dict[str, np.ndarray]]]
# The random stream that draws a sample cap's examples, apart from the run's others.
_SAMPLE_STREAM = 3
# Rows of in-memory data adapted at a time: as many as fill about this many bytes, within the
# bounds below. Keras's adapt costs per batch (Normalization: 15 s for 200,000 rows in batches of
# 32, 0.06 s in batches of 8,192), so the training batch size would be slow, and one batch of
# the whole split is what streaming avoids.
ADAPT_BATCH_BYTES = 8 * 2**20
MAX_ADAPT_BATCH = 65_536
# What a string cell is counted as: Python's object and a short text.
_STRING_BYTES = 64


def adapt_batch_rows(arrays: dict[str, np.ndarray], floor: int) -> int:
    """Rows to adapt on at a time from in-memory `arrays` (by input name): about
    `ADAPT_BATCH_BYTES` of them, at least `floor` (the training batch size) and at most
    `MAX_ADAPT_BATCH`."""
    row = sum(
        (_STRING_BYTES if a.dtype == object else a.dtype.itemsize) * int(np.prod(a.shape[1:]))
        for a in arrays.values()
    )
    return max(floor, min(MAX_ADAPT_BATCH, ADAPT_BATCH_BYTES // max(row, 1)))


def sampled_rows(
    count: int, read: Callable[[np.ndarray], dict[str, np.ndarray]], batch_size: int, seed: int
) -> InputBatches:
    """`InputBatches` over `count` examples that `read` gives by row numbers: all in order, or
    a sample of them drawn from `seed` (kept in order), `batch_size` rows at a time."""

    def batches(names: list[str], samples: int | None) -> Iterator[dict[str, np.ndarray]]:
        drawn = None
        if samples is not None and samples < count:
            draw = np.random.default_rng((seed, _SAMPLE_STREAM))
            drawn = np.sort(draw.choice(count, samples, replace=False))
        total = count if drawn is None else len(drawn)
        for start in range(0, total, batch_size):
            # Without a cap, each batch's row numbers are made as it is read, not the split's.
            stop = min(start + batch_size, total)
            values = read(np.arange(start, stop) if drawn is None else drawn[start:stop])
            yield {name: values[name] for name in names}

    return batches


def block_batches(blocks: Callable[[], Iterator[dict[str, np.ndarray]]]) -> InputBatches:
    """`InputBatches` over the input batches `blocks()` yields, afresh for each layer (a streamed
    table's windows, synthetic batches by index): a sample cap takes the first examples, which
    are as random as any."""

    def batches(names: list[str], samples: int | None) -> Iterator[dict[str, np.ndarray]]:
        left = samples
        for values in blocks():
            if left is not None:
                values = {name: value[:left] for name, value in values.items()}
                left -= len(next(iter(values.values())))
            yield {name: values[name] for name in names}
            if left is not None and left <= 0:
                return

    return batches


def first_batches(count: int, batch: Callable[[int], dict[str, np.ndarray]]) -> InputBatches:
    """`InputBatches` over the `count` batches that `batch` gives by index (synthetic data)."""
    return block_batches(lambda: (batch(index) for index in range(count)))


def adapt_layers(
    loaded: LoadedSpec, model: keras.Model, tensors: dict[str, Any], batches: InputBatches
) -> dict[str, int]:
    """Adapt each adapted node of `loaded`'s spec in `model` (built from it, with the symbolic
    `tensors` of its nodes) on what reaches it from `batches`, the training split's inputs.
    Returns how many examples each was adapted on. Raises `SpecErrors` at the node's `adapt`
    when a node between it and the inputs has trainable weights, and when what it learned
    would not survive Keras's saving."""
    adapted = adapted_nodes(loaded.spec)
    counts: dict[str, int] = {}
    if not adapted:
        return counts
    for name in build_order(loaded.spec):
        if name not in adapted:
            continue
        inputs, between = _upstream(loaded, name)
        _check_between(loaded, model, name, between)
        reference = loaded.spec.layers[name].inbound
        feed = _feed(tensors, inputs, reference, between)
        seen = [0]

        def stream(
            feed: Callable[[dict[str, np.ndarray]], np.ndarray] = feed,
            inputs: list[str] = inputs,
            samples: int | None = adapted[name].samples,
            seen: list[int] = seen,
        ) -> Iterator[np.ndarray]:
            for values in batches(inputs, samples):
                seen[0] += len(next(iter(values.values())))
                yield feed(values)

        layer = model.get_layer(name)
        try:
            layer.adapt(stream())
        except SpecErrors:
            raise
        except Exception as exc:  # Keras raises many kinds; its message says what is wrong
            raise _at(loaded, name, f"layer '{name}' could not be adapted: {_short(exc)}") from None
        if seen[0] == 0:
            raise _at(loaded, name, f"layer '{name}' is adapted, and the training split has no examples")
        _check_vocabulary(loaded, name, layer)
        counts[name] = seen[0]
    return counts


def copy_adapted(source: keras.Model, target: keras.Model, loaded: LoadedSpec) -> None:
    """Give each adapted layer of `target` (built from `loaded`) the state of the layer of the
    same name in `source` (the saved model), the way Keras's saving carries it: variables,
    assets (a vocabulary) and a Discretization's boundaries."""
    for name in adapted_nodes(loaded.spec):
        try:
            saved, layer = source.get_layer(name), target.get_layer(name)
        except ValueError:
            raise SpecErrors.single(
                f"the saved model has no layer '{name}', which its spec adapts: it does not fit its spec"
            ) from None
        store: dict[str, Any] = {}
        saved.save_own_variables(store)
        layer.load_own_variables(store)
        if hasattr(saved, "save_assets"):
            with tempfile.TemporaryDirectory() as folder:
                saved.save_assets(folder)
                layer.load_assets(folder)
        if isinstance(saved, keras.layers.Discretization):
            layer.bin_boundaries = saved.bin_boundaries


def _upstream(loaded: LoadedSpec, name: str) -> tuple[list[str], list[str]]:
    """The spec's inputs that reach node `name`, and the layer nodes between, in spec order."""
    spec = loaded.spec
    inputs: set[str] = set()
    between: set[str] = set()
    frontier = [name]
    while frontier:
        node = spec.layers[frontier.pop()]
        for reference, _ in node.references():
            target = reference_target(reference)
            if target in spec.inputs:
                inputs.add(target)
            elif target in spec.layers and target not in between:
                between.add(target)
                frontier.append(target)
    return [n for n in spec.inputs if n in inputs], [n for n in spec.layers if n in between]


def _check_between(loaded: LoadedSpec, model: keras.Model, name: str, between: list[str]) -> None:
    for node in between:
        owner = loaded.spec.owner(node) or node
        try:
            layer = model.get_layer(owner)
        except ValueError:
            continue  # an op: no layer, no weights
        if layer.trainable_weights:
            kind = loaded.spec.layers[owner].type or loaded.spec.layers[owner].node_kind
            raise _at(
                loaded,
                name,
                f"layer '{name}' is adapted on what reaches it, and that passes through '{node}' "
                f"({kind}), whose weights training changes: what it learned would not fit the trained model",
                hint=f"adapt a layer fed from the inputs through layers without trainable weights, "
                f"or freeze '{owner}' (trainable: false)",
            )


def _feed(
    tensors: dict[str, Any], inputs: list[str], reference: str, between: list[str]
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """What turns a batch of the inputs into what reaches the adapted layer: the input itself,
    or the sub-model from the inputs to the tensor it reads, run in inference mode."""
    if not between:
        return lambda values: values[inputs[0]]
    match = REFERENCE.match(reference)
    value = tensors[match.group("node")]
    index = match.group("index")
    if index is not None:
        value = value[int(index)] if index.lstrip("-").isdigit() else value[index]
    sub_model = keras.Model({n: tensors[n] for n in inputs}, value)
    return lambda values: keras.ops.convert_to_numpy(sub_model.predict_on_batch(values))


def _check_vocabulary(loaded: LoadedSpec, name: str, layer: Any) -> None:
    """Refuse a learned vocabulary that Keras's saving would change: it writes one token a line
    (`assets/.../vocabulary.txt`) and reads the lines back, dropping a last empty one, so a
    token with a line break, or an empty last token, would come back as other tokens."""
    if not hasattr(layer, "get_vocabulary") or str(getattr(layer, "vocabulary_dtype", "")) != "string":
        return
    tokens = [str(t) for t in layer.get_vocabulary(include_special_tokens=True)]
    for position, token in enumerate(tokens):
        if token.splitlines() != [token] and (token or position == len(tokens) - 1):
            shown = repr(token[:40])
            raise _at(
                loaded,
                name,
                f"layer '{name}' learned the token {shown}, which Keras cannot save: it writes a "
                "vocabulary one token a line, and would read this one back as other tokens",
                hint="clean the data (no line breaks or empty values in this column), or map them "
                "away before this layer",
            )


def _at(loaded: LoadedSpec, name: str, message: str, hint: str | None = None) -> SpecErrors:
    return SpecErrors.single(
        message,
        loaded.location("layers", name, "adapt", key=True),
        hint=hint,
        sources=loaded.diagnostics.sources,
    )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
