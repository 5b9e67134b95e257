"""A `.keras` model file read as untrusted input: bounded before Keras sees it.

Every model file graphspec reads (`export`, `build --weights [--partial]`, `train --init-from`,
`ensemble`'s members) goes through `graphspec.keras.export.load_keras_file`, which checks, in
this order, before `keras.saving.load_model` reads anything (`read_config`, then the classes,
then `check_declared`). The limits are meters of the command's budget (`graphspec.budget`,
`graphspec --limit NAME=N`), so every model file a command reads is charged to one budget:

1. the archive: a zip file of at most `MAX_MEMBERS` members, each a plain file; every member
   but the weights (`config.json`, `metadata.json`, assets, graphspec's own members) is charged
   to `model-bytes` as its header declares, before any is read. Python's zipfile never inflates
   a member past its declared size (it stops there and fails the CRC check), and `config.json`
   is read with that bound besides, so the declared sizes bound what is read.
2. `config.json`'s JSON: nested at most `model-depth` deep, with at most `model-containers`
   objects and arrays, its serialized Keras objects charged to `model-objects`, counted by
   linear scans of the text before `json.loads` runs (which would recurse once per level and
   end in a RecursionError).
3. its classes: every serialized object whose module is not Keras's (a layer of another
   package, a serialized function of `os`) is refused, naming it
   (`graphspec.keras.export._refuse_foreign_classes`).
4. the parameters it declares: the model is made from the config with its weights declared
   but not allocated (`keras.StatelessScope(initialize_variables=False)`, as `build` does with a
   spec), so their count is the exact count Keras would allocate, known before any is; more
   than `max_params` (`--max-params`) is refused, naming the largest layer.
5. the weights: `model.weights.h5` may hold at most `WEIGHT_SLOTS` times the bytes of the
   weights the config declares (the model's own and an optimizer's slots), plus
   `WEIGHTS_SLACK` for HDF5's own structure; its zip header and then every dataset's declared
   shape and type (HDF5 metadata, read by h5py without reading any data) are held to that,
   and an external or virtual dataset (data outside the file) is refused. Its declared size
   is charged to `model-weights`, over all the model files of the command.

Only then does Keras load the file, with `safe_mode=True` and no custom objects.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate
from pathlib import Path
from typing import Any

import keras

from graphspec import budget
from graphspec.archive import member_bytes
from graphspec.errors import SpecErrors
from graphspec.spec.load import DEFAULT_MAX_PARAMS

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"

# Keras writes three members and one per asset: this many is a hostile archive, not a model.
MAX_MEMBERS = 10_000
# model.weights.h5 holds the model's variables and, when it was compiled, its optimizer's: at
# most five slots per variable (Adam with amsgrad and EMA), and the step counters.
WEIGHT_SLOTS = 6
WEIGHTS_SLACK = 16_000_000  # HDF5's groups, headers and attributes

HINT = "a model file is untrusted input; graphspec reads nothing more from this one"
_PARAMS_HINT = "raise the budget with --max-params if this model is meant"


def read_config(path: Path) -> dict[str, Any]:
    """The config of the `.keras` file at `path`, once the archive's members and the config's
    size and nesting are within the bounds (steps 1 and 2 of the module's doc), its members'
    bytes and serialized objects charged to the command's budget. `SpecErrors` (exit 2) naming
    the limit, and the `--limit` that raises it, when one is not."""
    path = Path(path)
    with _archive(path) as archive:
        infos = _checked_members(path, archive, charge=True)
        config = infos[CONFIG]
        return parse_config(path, member_bytes(path, archive, config, config.file_size, _unsafe))


def check_declared(path: Path, max_params: int | None = DEFAULT_MAX_PARAMS) -> tuple[int, int]:
    """The parameters the model in `path` declares and the bytes of its weights, once they are
    within `max_params` and its weights file within what they allow (steps 4 and 5 of the
    module's doc). Call it after `read_config` (which charged the config to the budget) and the
    class check: it makes the model's layers from the config. `SpecErrors` naming the limit, and
    `--max-params` or the `--limit` that raises it."""
    path = Path(path)
    with _archive(path) as archive:
        infos = _checked_members(path, archive, charge=False)
        # Keras takes apart the config it is given: it gets one of its own.
        data = member_bytes(path, archive, infos[CONFIG], infos[CONFIG].file_size, _unsafe)
        params, nbytes = declared_weights(parse_config(path, data, charge=False), path, max_params)
        del data
        if WEIGHTS in infos:
            _check_weights(path, archive, infos[WEIGHTS], params, nbytes)
    return params, nbytes


@contextmanager
def _archive(path: Path) -> Iterator[zipfile.ZipFile]:
    if not path.is_file():
        raise SpecErrors.single(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise SpecErrors.single(
            f"{path} is not a Keras model file (.keras): it is not a zip archive",
            hint="save the model with model.save('model.keras')",
        )
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise SpecErrors.single(
            f"{path} is not a Keras model file (.keras): {short(exc)}",
            hint="save the model with model.save('model.keras')",
        ) from None


# ---------------------------------------------------------------- the archive


def _checked_members(path: Path, archive: zipfile.ZipFile, charge: bool) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name, each a plain file; with `charge`, every one but the
    weights charged to `model-bytes` as its header declares (a file is charged once, when its
    config is read)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _unsafe(path, f"it has {len(infos):,} members; at most {MAX_MEMBERS:,}")
    meter = budget.current()
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name in by_name:
            raise _unsafe(path, f"member '{name}' appears twice")
        by_name[name] = info
        if info.is_dir():
            continue
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer recorded no file type
        if kind not in (0, stat.S_IFREG):
            raise _unsafe(path, f"member '{name}' is not a plain file (a link or a device)")
        if info.flag_bits & 0x1:
            raise _unsafe(path, f"member '{name}' is encrypted")
        if name == WEIGHTS:
            continue  # held to the weights the config declares, once that is known
        if name.endswith(".npz") and "/" not in name:
            raise _unsafe(path, f"it holds its weights as '{name}'; graphspec reads {WEIGHTS} only")
        if charge:
            meter.charge(
                "model-bytes", info.file_size, None, f"{path}: {clip(name)}'s {info.file_size:,} bytes"
            )
    if CONFIG not in by_name:
        raise SpecErrors.single(
            f"{path} is not a Keras model file (.keras): it has no readable {CONFIG}",
            hint="save the model with model.save('model.keras')",
        )
    return by_name


# ---------------------------------------------------------------- config.json

# A JSON string (escapes included) or one bracket: brackets inside strings are not nesting.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_nesting(data: bytes, max_containers: int | None = None) -> tuple[int, int]:
    """The deepest nesting of objects and arrays in the JSON text `data`, and how many there are,
    in one linear pass that builds nothing (malformed text gives some answer; `json.loads` then
    refuses it). Past `max_containers` the depth is not worked out (0)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if max_containers is not None and len(brackets) > 2 * max_containers:
        return 0, len(brackets) // 2  # refused for its count: its depth is not needed
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0), len(brackets) // 2


def parse_config(path: Path, data: bytes, charge: bool = True) -> dict[str, Any]:
    """`config.json`'s content, its nesting and size checked against the command's budget
    before it is parsed; with `charge`, its serialized objects charged to `model-objects`."""
    meter = budget.current()
    depth, containers = json_nesting(data, meter.limits["model-containers"])
    meter.check("model-containers", containers, None, f"{path}: {CONFIG}'s {containers:,} objects and arrays")
    meter.check("model-depth", depth, None, f"{path}: {CONFIG}'s {depth:,} levels")
    # Each serialized object becomes a Keras object (a layer, an initializer...), each some KB.
    objects = data.count(b'"class_name"')
    what = f"{path}: {CONFIG}'s {objects:,} serialized objects"
    if charge:
        meter.charge("model-objects", objects, None, what)
    else:
        meter.check("model-objects", objects, None, what)
    try:
        config = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SpecErrors.single(
            f"{path} is not a Keras model file (.keras): {CONFIG} is not JSON ({short(exc)})"
        ) from None
    if not isinstance(config, dict):
        raise SpecErrors.single(f"{path} is not a Keras model file (.keras): {CONFIG} is not a JSON object")
    return config


# ---------------------------------------------------------------- parameters


def declared_weights(config: dict[str, Any], path: Path, max_params: int | None) -> tuple[int, int]:
    """The parameters the config's model declares and their bytes, counted on the model made
    from the config with no weight allocated; `SpecErrors` past `max_params`."""
    from keras.src.backend.common import global_state
    from keras.src.saving import serialization_lib

    config = {**config, "compile_config": None}
    _register_graphspec_classes()
    try:
        with keras.StatelessScope(initialize_variables=False), serialization_lib.ObjectSharingScope():
            model = serialization_lib.deserialize_keras_object(config, safe_mode=True)
        variables = list(getattr(model, "weights", []))
        params = sum(_size(v.shape) for v in variables)
        nbytes = sum(_size(v.shape) * _itemsize(v.dtype) for v in variables)
        if max_params is not None and params > max_params:
            layers = [layer for layer in getattr(model, "layers", []) if layer.weights]
            largest = max(layers, key=lambda layer: sum(_size(w.shape) for w in layer.weights), default=None)
            alone = (
                f"; layer '{clip(largest.name)}' alone has {sum(_size(w.shape) for w in largest.weights):,}"
                if largest is not None
                else ""
            )
            raise SpecErrors.single(
                f"{path}: its {CONFIG} declares a model of {params:,} parameters, over the budget of "
                f"{max_params:,}{alone}",
                hint=_PARAMS_HINT,
            )
        return params, nbytes
    except SpecErrors:
        raise
    except Exception as exc:  # Keras raises many kinds; its message says what is wrong
        raise SpecErrors.single(f"cannot load {path}: {short(exc)}") from None
    finally:
        # Forget the declared weights, or the next model made would allocate them.
        global_state.set_global_attribute("uninitialized_variables", [])


def _register_graphspec_classes() -> None:
    """Import graphspec's own Keras classes where this graphspec has them (they register
    themselves with Keras on import), so that a config naming them is made as Keras's are."""
    import importlib
    import importlib.util

    for name in ("graphspec.keras.layers", "graphspec.keras.losses"):
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def _size(shape: Any) -> int:
    total = 1
    for dim in shape:
        total *= int(dim or 0)
    return total


def _itemsize(dtype: Any) -> int:
    import numpy as np

    try:
        return max(1, np.dtype(str(dtype)).itemsize)
    except TypeError:
        return 8


# ---------------------------------------------------------------- model.weights.h5


def weights_limit(declared_bytes: int) -> int:
    """The most bytes a weights file may hold for a model whose weights take `declared_bytes`."""
    return WEIGHT_SLOTS * declared_bytes + WEIGHTS_SLACK


def _check_weights(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, params: int, declared_bytes: int
) -> None:
    import h5py

    limit = weights_limit(declared_bytes)
    declared = f"the model its {CONFIG} declares has {params:,} parameters ({declared_bytes:,} bytes)"
    if info.file_size > limit:
        raise _unsafe(path, f"{WEIGHTS} declares {info.file_size:,} bytes, but {declared}: at most {limit:,}")
    budget.current().charge(
        "model-weights", info.file_size, None, f"{path}: {WEIGHTS}'s {info.file_size:,} bytes"
    )
    data = member_bytes(path, archive, info, limit, _unsafe)
    total = 0

    def visit(name: str, item: Any) -> str | None:
        """Why the file is refused at `item` (which stops the walk); None to go on."""
        nonlocal total
        if not isinstance(item, h5py.Dataset):
            return None
        if item.external or item.is_virtual:
            return f"{WEIGHTS}: dataset '{clip(name)}' keeps its data outside the file"
        total += _size(item.shape or ()) * item.dtype.itemsize
        if total > limit:
            at = clip(name)
            return f"{WEIGHTS}: its datasets declare over {limit:,} bytes (at '{at}'), but {declared}"
        return None

    try:
        with h5py.File(io.BytesIO(data), "r") as weights:
            refused = weights.visititems(visit)
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on a damaged file
        raise _unsafe(path, f"{WEIGHTS} is not a readable HDF5 file ({short(exc)})") from None
    if refused:
        raise _unsafe(path, refused)


# ---------------------------------------------------------------- messages


def _unsafe(path: Path, reason: str) -> SpecErrors:
    return SpecErrors.single(f"{path}: {reason}", hint=HINT)


def clip(value: Any) -> str:
    """`value` as text of at most 80 characters, for a name inside a message."""
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def short(value: Any) -> str:
    """`value` (an exception's text) on one line of at most 300 characters, for a message."""
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."
