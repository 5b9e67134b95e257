"""Serving formats: a built or trained model written for a runtime that has no Keras, through
Keras's own `model.export` (`graphspec build --format`, `graphspec export-model`).

What every format promises:

- the inputs and outputs are the spec's, by name: the model exported is the twin that takes and
  gives dicts keyed by the spec's input and output names (`build.by_name`), whatever `structure:`
  the spec gives its model;
- the batch size is dynamic: the signature is the model's inputs with the first dimension left
  open, even where a spec input fixes `batch_size` (a server batches as it likes);
- what the model holds is exported with it: preprocessing layers with their state (a
  Normalization's mean and variance, adapted or given) are part of the graph;
- nothing is written or half-written on failure: a file format goes through
  `atomic.replacing`, a folder format through `atomic.replacing_folder`.

ONNX on the TensorFlow backend goes through tf2onnx, and an operation it has no ONNX mapping for
is refused, naming the operation and the spec node that uses it, before anything is written.

TensorFlow is imported: this module exports live Keras models.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from graphspec import atomic
from graphspec.errors import SpecErrors
from graphspec.spec.load import DEFAULT_MAX_PARAMS, LoadedSpec


@dataclass(frozen=True)
class Format:
    """One serving format: Keras's name for it, the ending its file must have (None: a folder),
    and the Python packages that must be importable to write it."""

    keras_name: str
    ending: str | None
    packages: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {
    "saved_model": Format("tf_saved_model", None),
    "onnx": Format("onnx", ".onnx", ("tf2onnx", "onnx")),
    "litert": Format("litert", ".tflite"),
    # Keras writes OpenVINO's model as NAME.xml and its weights as NAME.bin beside it; graphspec
    # writes both into one folder, so that the pair is replaced together or not at all.
    "openvino": Format("openvino", None, ("openvino",)),
}
# The file an OpenVINO folder holds (and its weights, model.bin).
OPENVINO_MODEL = "model.xml"
INSTALL_HINT = "install with: pip install 'graphspec[serve]'"


def check_output(format_name: str, output: Path) -> Path:
    """`output` as a path the format can be written to (checked before any model is built):
    a file with the format's ending, or a folder that is new or empty; else `SpecErrors`. Also
    refuses a format whose packages are not installed, saying which."""
    served = _format(format_name)
    missing = [p for p in served.packages if importlib.util.find_spec(p) is None]
    if missing:
        raise SpecErrors.single(
            f"--format {format_name} needs the package{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)}, which {'are' if len(missing) > 1 else 'is'} not installed",
            hint=INSTALL_HINT,
        )
    if served.ending is None:
        return atomic.check_folder(output)
    if not output.name.endswith(served.ending) or output.name == served.ending:
        raise SpecErrors.single(
            f"--format {format_name} writes a {served.ending} file: --output is '{output}'"
        )
    return atomic.check_target(output)


def serving_model(model: keras.Model, loaded: LoadedSpec) -> keras.Model:
    """The model as it is served: inputs and outputs as dicts by the spec's names (the same
    layers and weights), and each node's `call: {training: ...}` honoured, as `predict` does."""
    from graphspec.keras.build import by_name, honour_call_training

    return by_name(honour_call_training(model), loaded, compile=False)


def input_signature(model: keras.Model) -> list[Any]:
    """The signature `model.export` is given: the model's inputs, by name, batch dimension open.

    Keras computes the same one itself, but only for a model that has been called once, and
    it keeps a batch size that an `Input` fixes."""
    return [
        keras.tree.map_structure(
            lambda t: keras.InputSpec(shape=(None, *t.shape[1:]), dtype=t.dtype, name=t.name), model.input
        )
    ]


def export(model: keras.Model, loaded: LoadedSpec, format_name: str, output: Path) -> Path:
    """Write `model` (built from `loaded`, weights in place) to `output` in the serving format
    `format_name`; returns the path written (for OpenVINO, the folder holding model.xml and
    model.bin). Raises `SpecErrors`, having written nothing, when the output cannot be written,
    a package is missing, or (ONNX) an operation has no mapping."""
    output = check_output(format_name, output)
    served = serving_model(model, loaded)
    signature = input_signature(served)
    keras_name = FORMATS[format_name].keras_name
    if FORMATS[format_name].ending is not None:
        with atomic.replacing(output) as temporary:
            if format_name == "onnx":
                with _onnx_conversion(served):
                    served.export(str(temporary), format=keras_name, verbose=False, input_signature=signature)
                _check_onnx(temporary, loaded)
            else:
                served.export(str(temporary), format=keras_name, verbose=False, input_signature=signature)
        return output
    with atomic.replacing_folder(output) as temporary:
        target = temporary / OPENVINO_MODEL if format_name == "openvino" else temporary
        served.export(str(target), format=keras_name, verbose=False, input_signature=signature)
    return output


def export_run(
    run: Path, format_name: str, output: Path, max_params: int | None = DEFAULT_MAX_PARAMS
) -> Path:
    """Write the finished run `run`'s model.keras to `output` in the serving format (see
    `export`). The file is untrusted input, read through `export.load_keras_file` (at most
    `max_params` parameters declared); the spec beside it names the inputs and outputs."""
    import graphspec
    from graphspec import run_dir
    from graphspec.keras.export import load_keras_file

    model_path, spec_path = run_dir.finished_files(run, hint="name a folder that graphspec train wrote")
    loaded = graphspec.load(spec_path)
    model = load_keras_file(model_path, max_params)[0]
    return export(model, loaded, format_name, output)


def _format(name: str) -> Format:
    if name not in FORMATS:
        raise SpecErrors.single(f"unknown --format '{name}': choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


@contextlib.contextmanager
def _onnx_conversion(model: keras.Model) -> Iterator[None]:
    """While Keras converts `model` with tf2onnx: constants the traced function captures (a
    Normalization's given mean and variance) are frozen into the graph, and each op node's
    TensorFlow operations are named under the node, so that one ONNX cannot map is found in the
    spec.

    tf2onnx's `from_function` (which Keras calls) lists a captured constant among the graph's
    inputs, so the ONNX model would ask the caller for the layer's mean; `from_keras` leaves
    captures out, and so does this, by removing them from the list of inputs it freezes with."""
    from tf2onnx import tf_loader

    freeze = tf_loader.from_function

    def without_captures(function: Any, input_names: list[str], output_names: list[str], **kwargs: Any):
        captured = {t.name for t in function.graph.internal_captures}
        # In place: tf2onnx passes the same list on to the conversion.
        input_names[:] = [n for n in input_names if n not in captured]
        return freeze(function, input_names, output_names, **kwargs)

    operations = [op for op in _operations(model) if not isinstance(op, keras.layers.Layer)]
    tf_loader.from_function = without_captures
    # tf2onnx logs each operation it cannot map; the error `_check_onnx` raises says it once, at
    # the spec's line. Keras's numpy patch for tf2onnx warns about `np.object`, not ours to show.
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        for op in operations:
            op.call = _named_call(op)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)
        tf_loader.from_function = freeze
        for op in operations:
            vars(op).pop("call", None)


def _operations(model: keras.Model) -> Iterator[Any]:
    for op in model.operations:
        yield op
        if isinstance(op, keras.Model) and hasattr(op, "operations"):
            yield from _operations(op)


def _named_call(op: Any) -> Any:
    call = type(op).call.__get__(op)

    def named(*args: Any, **kwargs: Any) -> Any:
        with keras.name_scope(op.name):
            return call(*args, **kwargs)

    return named


def _check_onnx(path: Path, loaded: LoadedSpec) -> None:
    """Refuse an ONNX file tf2onnx wrote with an operation ONNX does not define: it writes the
    TensorFlow operation as it is (logging 'is not supported'), and no runtime loads the file."""
    import onnx

    model = onnx.load(str(path))
    for node in _onnx_nodes(model.graph):
        if node.domain in ("", "ai.onnx", "ai.onnx.ml") and not onnx.defs.has(node.op_type, node.domain):
            raise _unmapped(node.op_type, node.name, loaded)


def _onnx_nodes(graph: Any) -> Iterator[Any]:
    """The nodes of `graph` and of the graphs its nodes hold (a Loop's body, an If's branches)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for inner in (attribute.g, *attribute.graphs):
                yield from _onnx_nodes(inner)


def _unmapped(op_type: str, onnx_name: str, loaded: LoadedSpec) -> SpecErrors:
    node = _spec_node(onnx_name, loaded)
    hint = "export to saved_model, litert or openvino, which run TensorFlow's operations"
    if node is None:
        return SpecErrors.single(
            f"the model uses TensorFlow's {op_type}, which has no ONNX mapping (tf2onnx); "
            "nothing was written",
            hint=hint,
        )
    layer = loaded.spec.layers[node]
    what = f"op {layer.op}" if layer.op else f"type {layer.type or layer.spec or layer.share}"
    return SpecErrors.single(
        f"node '{node}' ({what}) uses TensorFlow's {op_type}, which has no ONNX mapping (tf2onnx); "
        "nothing was written",
        loaded.location("layers", node, key=True),
        hint=hint,
        sources=loaded.diagnostics.sources,
    )


def _spec_node(onnx_name: str, loaded: LoadedSpec) -> str | None:
    """The spec node an ONNX node came from, by the name scopes in its name (`model/NODE/...`;
    TensorFlow adds `_1`, `_2` to a scope entered again in another trace)."""
    nodes = loaded.spec.layers
    for scope in onnx_name.split("/")[1:-1]:
        if scope in nodes:
            return scope
        unnumbered = re.fullmatch(r"(.+)_\d+", scope)
        if unnumbered and unnumbered.group(1) in nodes:
            return unnumbered.group(1)
    return None
