"""The arrays a spec reads and is trained on, with NumPy alone (no TensorFlow).

Synthetic inputs come from each input's shape and dtype: integers stay inside the vocabulary of
the Embedding they feed (or the input's `range`), null dimensions take the input's `seq_len`,
else the training `seq_len`. Synthetic targets fit each output's loss: one-hot rows for
categorical crossentropy, class ids for sparse, 0/1 for binary, real values for regression.

`.npz` files are checked against the spec here too, so that a missing array, a wrong shape,
dtype or sample count is reported, naming the array, before any training starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec.errors import Diagnostics, SpecErrors, did_you_mean

# NumPy is imported by the functions that use it: `validate` reads this module's loss kinds
# and must not pay NumPy's import (tests/test_cli_imports.py).
if TYPE_CHECKING:
    import numpy as np

    from graphspec.spec.load import LoadedSpec
    from graphspec.spec.model import TypedObject

DEFAULT_SEQ_LEN = 16
# Integer inputs that feed no Embedding and give no `range` draw from this range.
DEFAULT_INT_RANGE = (0, 10)

# Layers whose integer input must stay below an argument's value: (type, argument).
_VOCABULARY_ARGS = {"Embedding": "input_dim", "CategoryEncoding": "num_tokens"}

# Target kinds, by loss. Losses are matched by their snake_case name (`CategoricalCrossentropy`
# and `categorical_crossentropy` are one loss).
ONE_HOT, SPARSE, BINARY, POSITIVE, REAL, OTHER = "one-hot", "sparse", "binary", "positive", "real", "other"
_FAMILIES = {
    ONE_HOT: {
        "categorical_crossentropy",
        "categorical_focal_crossentropy",
        "categorical_hinge",
        "categorical_generalized_cross_entropy",
        "kl_divergence",
        "kld",
    },
    SPARSE: {"sparse_categorical_crossentropy"},
    BINARY: {
        "binary_crossentropy",
        "bce",
        "binary_focal_crossentropy",
        "hinge",
        "squared_hinge",
        "dice",
        "tversky",
    },
    POSITIVE: {"poisson", "mean_squared_logarithmic_error", "msle", "mean_absolute_percentage_error", "mape"},
    REAL: {
        "mean_squared_error",
        "mse",
        "mean_absolute_error",
        "mae",
        "huber",
        "log_cosh",
        "cosine_similarity",
    },
}
_LOSS_FAMILY = {name: family for family, names in _FAMILIES.items() for name in names}


def _snake(name: str) -> str:
    if name.isupper():  # MSE, KLD, BCE
        return name.lower()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Target:
    """What an output's targets look like: its loss's kind, and whether predictions are logits."""

    family: str
    from_logits: bool = False
    loss: str = ""


def target_for(loss: str | TypedObject | None) -> Target | None:
    """The kind of targets an output's loss takes; None for an output without a loss.

    A loss whose targets have no simple form (CTC, Circle) is of kind `other`: arrays for it are
    taken as they are, and synthetic data refuses it.

    >>> target_for("categorical_crossentropy").family
    'one-hot'
    """
    if loss is None:
        return None
    name = loss if isinstance(loss, str) else loss.type
    args = {} if isinstance(loss, str) else loss.args
    return Target(_LOSS_FAMILY.get(_snake(name), OTHER), bool(args.get("from_logits", False)), name)


def targetless_outputs(loaded: LoadedSpec) -> list[str]:
    """The outputs with a loss that reads no target array: `loss: value` and `target: index`.
    No file needs an array for them and synthetic data makes none; Keras, which hands every
    loss a `y_true`, is fed `dummy_target` for them."""
    return [n for n, o in loaded.spec.outputs.items() if o.loss is not None and not o.takes_data]


def dummy_target(count: int) -> np.ndarray:
    """What Keras is fed as `y_true` of `count` samples for a targetless output: zeros, one per
    sample, which graphspec's losses for these outputs ignore (`graphspec.keras.losses`)."""
    import numpy as np

    return np.zeros((count,), dtype=np.float32)


def dtype_kind(dtype: str) -> str:
    """'int', 'float', 'bool' or 'string': what kind of values a Keras dtype holds."""
    if dtype == "bool":
        return "bool"
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype.startswith(("float", "bfloat")):
        return "float"
    return "string"


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype to generate for a Keras dtype (bfloat16, which NumPy lacks, as float32)."""
    import numpy as np

    return np.dtype("float32" if dtype == "bfloat16" else dtype)


@dataclass(frozen=True)
class InputPlan:
    """How to generate one input: concrete per-sample shape, dtype, and value range."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    low: float | None = None
    high: float | None = None

    def generate(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` samples: integers in [low, high), floats uniform in it or standard normal."""
        import numpy as np

        size = (count,) + self.shape
        kind = dtype_kind(self.dtype)
        if kind == "int":
            return rng.integers(int(self.low), int(self.high), size=size, dtype=numpy_dtype(self.dtype))
        if kind == "bool":
            return rng.integers(0, 2, size=size).astype(bool)
        if self.low is not None:
            values = rng.uniform(self.low, self.high, size=size)
        else:
            values = rng.standard_normal(size=size, dtype=np.float32)
        return values.astype(numpy_dtype(self.dtype), copy=False)


def vocabulary_limit(loaded: LoadedSpec, input_name: str) -> tuple[str, int] | None:
    """The tightest vocabulary an integer input feeds: (layer node, size), or None.

    Follows shared layers to the layer they share, and nested specs to the input they pass to.
    """
    found: list[tuple[str, int]] = []
    spec = loaded.spec
    for name, node in spec.layers.items():
        root_name = spec.owner(name) or name
        root = spec.layers[root_name]
        for position, (reference, where) in enumerate(node.references()):
            if reference != input_name:
                continue
            if root.type in _VOCABULARY_ARGS:
                size = root.args.get(_VOCABULARY_ARGS[root.type])
                if isinstance(size, int):
                    found.append((name, size))
            elif root.spec is not None and root_name in loaded.nested:
                nested = loaded.nested[root_name]
                inner = where[1] if len(where) > 1 and isinstance(where[1], str) else None
                if inner is None:
                    names = list(nested.spec.inputs)
                    inner = names[position] if position < len(names) else None
                if inner is not None:
                    limit = vocabulary_limit(nested, inner)
                    if limit is not None:
                        found.append((name, limit[1]))
    return min(found, key=lambda item: item[1]) if found else None


def input_plans(loaded: LoadedSpec, seq_len: int | None = None) -> dict[str, InputPlan]:
    """How to generate each input of `loaded`; `seq_len` fills null dimensions of inputs that
    set none themselves. Raises `SpecErrors` for string inputs, which cannot be made up."""
    plans = {}
    default_len = seq_len or loaded.spec.train.seq_len or DEFAULT_SEQ_LEN
    for name, spec_input in loaded.spec.inputs.items():
        length = spec_input.seq_len or default_len
        shape = tuple(length if dim is None else dim for dim in spec_input.shape)
        kind = dtype_kind(spec_input.dtype)
        low = high = None
        if kind == "string":
            raise SpecErrors.single(
                f"input '{name}' has dtype {spec_input.dtype}: synthetic data cannot make it up",
                loaded.location("inputs", name, "dtype"),
                hint="train on arrays with --data FILE.npz",
                sources=loaded.diagnostics.sources,
            )
        if spec_input.range is not None:
            low, high = spec_input.range
        elif kind == "int":
            limit = vocabulary_limit(loaded, name)
            low, high = (0, limit[1]) if limit else DEFAULT_INT_RANGE
        plans[name] = InputPlan(name, shape, spec_input.dtype, low, high)
    return plans


def _one_hot(ids: np.ndarray, classes: int) -> np.ndarray:
    import numpy as np

    out = np.zeros(ids.shape + (classes,), dtype=np.float32)
    np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
    return out


def random_target(target: Target, shape: tuple[int, ...], rng: np.random.Generator, count: int) -> np.ndarray:
    """Noise targets for an output of per-sample `shape` (the output's, not the target's),
    fitting its loss."""
    import numpy as np

    if target.family in (ONE_HOT, SPARSE):
        ids = rng.integers(0, shape[-1], size=(count,) + shape[:-1], dtype=np.int32)
        return _one_hot(ids, shape[-1]) if target.family == ONE_HOT else ids
    size = (count,) + shape
    if target.family == BINARY:
        return rng.integers(0, 2, size=size).astype(np.float32)
    if target.family == POSITIVE:
        return rng.uniform(0.5, 1.5, size=size).astype(np.float32)
    return rng.standard_normal(size=size, dtype=np.float32)


def _scores(target: Target, prediction: np.ndarray) -> np.ndarray:
    """Class scores of a classification output: its logits, or log-probabilities."""
    import numpy as np

    prediction = np.asarray(prediction, dtype=np.float32)
    if target.family in (ONE_HOT, SPARSE) and not target.from_logits:
        return np.log(np.clip(prediction, 1e-7, 1.0))
    return prediction


def teacher_calibration(target: Target, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed statistics of a teacher's outputs on calibration inputs, per output unit.

    A randomly initialised network tends to give every input nearly the same output: the
    same class, the same side of 0.5. Targets taken relative to these statistics (each class's
    mean score, each unit's median or mean and spread) vary from input to input, and stay a
    fixed function of the input that the same architecture can represent: the offsets are
    biases of its last layer.
    """
    import numpy as np

    scores = _scores(target, predictions)
    axes = tuple(range(scores.ndim - 1))
    if target.family in (ONE_HOT, SPARSE):
        return {"offset": scores.mean(axis=axes)}
    if target.family == BINARY:
        return {"threshold": np.median(scores, axis=axes)}
    return {"mean": scores.mean(axis=axes), "scale": scores.std(axis=axes) + 1e-6}


def teacher_target(target: Target, prediction: np.ndarray, calibration: dict[str, np.ndarray]) -> np.ndarray:
    """Targets from a teacher's predictions: its class after removing each class's mean score
    (classification), its side of each unit's median (binary), its standardized value
    (regression; through softplus where targets must be positive)."""
    import numpy as np

    scores = _scores(target, prediction)
    if target.family in (ONE_HOT, SPARSE):
        ids = np.argmax(scores - calibration["offset"], axis=-1).astype(np.int32)
        return _one_hot(ids, scores.shape[-1]) if target.family == ONE_HOT else ids
    if target.family == BINARY:
        return (scores > calibration["threshold"]).astype(np.float32)
    standard = (scores - calibration["mean"]) / calibration["scale"]
    if target.family == POSITIVE:
        return np.logaddexp(0.0, standard).astype(np.float32)
    return standard.astype(np.float32)


def target_shape(target: Target, output_shape: tuple) -> tuple:
    """Per-sample shape of a target for an output of per-sample `output_shape`."""
    return tuple(output_shape[:-1]) if target.family == SPARSE else tuple(output_shape)


# --- .npz files --------------------------------------------------------------------------------


_NPZ_HINT = "write it with numpy.savez(path, input_name=array, ...)"


@dataclass(frozen=True)
class ArrayHeader:
    """What an .npy header says of its array: shape and dtype, with the array's own `ndim`,
    `size` and `len()`, so that the checks of arrays below take headers as well."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]


def read_headers(path: Path) -> dict[str, ArrayHeader]:
    """The header of each array of an .npz file, by name, read without decompressing any data.

    Raises `SpecErrors` naming the file and the array for a member that is not an .npy array,
    an array of Python objects (reading one would need pickle), and an array whose header
    does not account for exactly the bytes the archive records for it (a damaged or forged
    file, whose header cannot be trusted to say how much reading it takes).
    """
    # Imported here, as NumPy is: `validate` imports this module for its target families, and
    # zipfile (with shutil, bz2 and lzma) cost it 4 ms (issue 22).
    import zipfile

    from numpy.lib import format as npy

    path = Path(path)
    if not path.is_file():
        raise SpecErrors.single(f"no such data file: {path}")
    if not zipfile.is_zipfile(path):
        raise SpecErrors.single(f"cannot read data file {path}: it is not an .npz archive", hint=_NPZ_HINT)
    headers: dict[str, ArrayHeader] = {}
    name = ""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if not info.filename.endswith(".npy"):
                    raise SpecErrors.single(
                        f"data file {path} holds '{info.filename}', which is not a NumPy array (.npy)",
                        hint=_NPZ_HINT,
                    )
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = npy.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = npy.read_array_header_2_0(member)
                    else:
                        raise ValueError(f".npy format version {version[0]}.{version[1]} is not read")
                    header_bytes = member.tell()
                if dtype.hasobject:
                    raise SpecErrors.single(
                        f"array '{name}' in {path} has dtype {dtype}: arrays of Python objects are "
                        "not read, since reading them would run pickle",
                        hint="save arrays of numbers",
                    )
                data_bytes = math.prod(shape) * dtype.itemsize
                if header_bytes + data_bytes != info.file_size:
                    raise SpecErrors.single(
                        f"array '{name}' in {path} has a header for {data_bytes:,} bytes of "
                        f"{dtype} {tuple(shape)}, but the archive holds {info.file_size - header_bytes:,}: "
                        "the file is damaged, or was not written by NumPy",
                        hint=_NPZ_HINT,
                    )
                headers[name] = ArrayHeader(tuple(shape), dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        which = f"array '{name}' in " if name else ""
        raise SpecErrors.single(f"cannot read {which}data file {path}: {exc}", hint=_NPZ_HINT) from None
    return headers


def load_arrays(path: Path, loaded: LoadedSpec | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, by name. Raises `SpecErrors` naming the file it cannot read.

    Every header is checked before any array is read (see `read_headers`). Given the spec the
    arrays are for, the inputs' arrays are checked from their headers as `check_inputs` checks
    arrays (presence, shape, dtype), and the targets' for presence and a numeric dtype, before
    any array is read; then only the arrays the spec reads are read.
    """
    import zipfile

    import numpy as np

    path = Path(path)
    headers = read_headers(path)
    names = list(headers)
    if loaded is not None:
        diagnostics = Diagnostics()
        check_inputs(headers, str(path), loaded, diagnostics)
        targets = {n: target_for(o.loss) for n, o in loaded.spec.outputs.items() if o.takes_data}
        for name in targets:
            _check_target_dtype(headers, str(path), name, diagnostics)
        read = list(loaded.spec.inputs) + list(targets)
        if diagnostics.errors:
            # Named with the other problems the headers show; when there are none, the sample
            # counts are checked after reading, with what only the values show (an index past
            # a vocabulary), so that every problem is named at once.
            check_counts(headers, str(path), read, diagnostics)
            diagnostics.raise_if_errors()
        names = [name for name in names if name in read]
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in names}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecErrors.single(f"cannot read data file {path}: {exc}", hint=_NPZ_HINT) from None


def _check_target_dtype(arrays: dict[str, Any], file: str, name: str, diagnostics: Diagnostics) -> None:
    if name not in arrays:
        diagnostics.error(
            f"data file {file} has no array '{name}' for output '{name}'",
            hint=did_you_mean(name, arrays) or _has(arrays),
        )
    elif arrays[name].dtype.kind not in "biuf":
        diagnostics.error(
            f"array '{name}' in {file} has dtype {arrays[name].dtype}; output '{name}' takes numbers"
        )


def _shape_text(shape: tuple) -> str:
    dims = ["N"] + ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ")"


def _fits(actual: tuple, expected: tuple) -> bool:
    if len(actual) != len(expected):
        return False
    return all(e is None or a == e for a, e in zip(actual, expected, strict=True))


def check_inputs(
    arrays: dict[str, np.ndarray], file: str, loaded: LoadedSpec, diagnostics: Diagnostics
) -> None:
    """Report, in `diagnostics`, each input array that is missing or has a wrong shape, dtype or
    value (an index past the vocabulary of the Embedding it feeds). `arrays` may be headers
    (`ArrayHeader`): all but the values are checked."""
    import numpy as np

    for name, spec_input in loaded.spec.inputs.items():
        if name not in arrays:
            diagnostics.error(
                f"data file {file} has no array '{name}' for input '{name}'",
                hint=did_you_mean(name, arrays) or _has(arrays),
            )
            continue
        array = arrays[name]
        expected = tuple(spec_input.shape)
        if array.ndim == 0 or not _fits(array.shape[1:], expected):
            diagnostics.error(
                f"array '{name}' in {file} has shape {tuple(array.shape)}; input '{name}' "
                f"takes {_shape_text(expected)}"
            )
            continue
        kind, actual = dtype_kind(spec_input.dtype), array.dtype
        if actual.kind not in "biuf":
            diagnostics.error(
                f"array '{name}' in {file} has dtype {actual}; input '{name}' takes "
                f"{spec_input.dtype} numbers"
            )
        elif kind == "int" and actual.kind not in "biu":
            diagnostics.error(
                f"array '{name}' in {file} has dtype {actual}; input '{name}' is "
                f"{spec_input.dtype} and takes integers"
            )
        elif kind == "int" and isinstance(array, np.ndarray) and array.size:  # not a header
            limit = vocabulary_limit(loaded, name)
            if limit is not None and (array.max() >= limit[1] or array.min() < 0):
                bad = array.max() if array.max() >= limit[1] else array.min()
                diagnostics.error(
                    f"array '{name}' in {file} holds {bad}; layer '{limit[0]}' takes "
                    f"indices from 0 to {limit[1] - 1}"
                )


def check_targets(
    arrays: dict[str, np.ndarray],
    file: str,
    expected: dict[str, tuple[Target, tuple]],
    diagnostics: Diagnostics,
) -> None:
    """Report each target array that is missing or does not fit its output's shape and loss.

    `expected` maps each output with a loss to its target kind and per-sample output shape.
    """
    for name, (target, output_shape) in expected.items():
        if name not in arrays:
            diagnostics.error(
                f"data file {file} has no array '{name}' for output '{name}'",
                hint=did_you_mean(name, arrays) or _has(arrays),
            )
            continue
        array = arrays[name]
        shape = target_shape(target, output_shape)
        if target.family == OTHER:  # no known shape: Keras checks it
            shape = tuple(array.shape[1:])
        fits = array.ndim > 0 and (
            _fits(array.shape[1:], shape)
            or (target.family == SPARSE and _fits(array.shape[1:], shape + (1,)))
        )
        if not fits:
            what = "class ids" if target.family == SPARSE else "targets"
            takes = _shape_text(shape)
            if target.family == SPARSE:
                takes += f" or {_shape_text(shape + (1,))}"
            diagnostics.error(
                f"array '{name}' in {file} has shape {tuple(array.shape)}; output '{name}' "
                f"({target.family} {what}) takes {takes}"
            )
        elif array.dtype.kind not in "biuf":
            diagnostics.error(
                f"array '{name}' in {file} has dtype {array.dtype}; output '{name}' takes numbers"
            )
        elif target.family == SPARSE and array.dtype.kind not in "biu":
            diagnostics.error(
                f"array '{name}' in {file} has dtype {array.dtype}; output '{name}' "
                "(sparse class ids) takes integers"
            )


def check_counts(arrays: dict[str, np.ndarray], file: str, names: list[str], diagnostics: Diagnostics) -> int:
    """Report each of `names` whose sample count differs from the others'; return the count
    most of them have (the arrays that differ are the ones named)."""
    counts = {n: len(arrays[n]) for n in names if n in arrays and arrays[n].ndim > 0}
    if not counts:
        return 0
    values = list(counts.values())
    count = max(values, key=lambda c: (values.count(c), -values.index(c)))
    for name, other in counts.items():
        if other != count:
            diagnostics.error(f"array '{name}' in {file} has {other} samples; the other arrays have {count}")
    if count == 0:
        diagnostics.error(f"data file {file} holds no samples")
    return count


def _has(arrays: dict[str, Any]) -> str:
    return "it holds: " + ", ".join(arrays) if arrays else "it holds no arrays"
