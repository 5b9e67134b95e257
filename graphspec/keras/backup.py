"""The backup a run keeps of its last completed epoch, for `graphspec train --resume`, written
in a small fraction of the time Keras's BackupAndRestore takes, and never half-written.

Where Keras's time goes (measured on the frozen-MobileNetV2 fine-tuning bench,
bench/bench_finetune.py: 262 weight arrays, 2.2 MB, of which 2 train; cProfile of one
`model.save_weights`, 0.20 s unprofiled on a quiet 2-core machine, about a second under load):

- 57%: walking the model to find what to save (`saving_lib._walk_saveable`: `dir()` and
  `getattr` of every attribute of all 160 layers, and `get_attr_skipset`, which builds a new
  Layer per layer type to learn which attributes to skip). The walk is the same every epoch.
- 14%: reading the 262 variables one by one into NumPy.
- 27%: h5py creating 160 groups and 268 datasets, most of them a frozen layer's arrays whose
  values did not change since the last epoch.
- Not the optimizer (Adam holds 6 arrays: only the head trains), not the model's config (a
  weights file has none), not fsync (Keras does none).

So `EpochBackup` walks the model once per fit (per stage: each compiles a new optimizer) and
keeps the list of (group, key, variable) it found; each epoch it reads every variable in one
call (TensorFlow: one graph), hashes each array (BLAKE2b), and writes only the arrays whose
hash changed into a copy of the previous backup (the first backup of a fit is written whole).
Changes are found by value, not by which layers are frozen: a frozen layer's random-seed state
or an assignment from a callback still changes its arrays. The file holds what Keras's
`save_weights` writes, group for group (tests/test_backup.py), so `model.load_weights` restores
it. On the bench this takes about 10 ms an epoch instead of 200 (cProfile of 10 backups, load
4.9: 2 ms hashing, 2 ms renaming, 1.5 ms reading the variables, the rest copying the 2.2 MB
file and h5py).

What resume relies on is kept, and made stronger:

- A kill at any moment leaves the last complete backup: the new one is written to a temporary
  file beside it (`.latest.partial.weights.h5`) and renamed over it. Keras's overwrites its
  file in place, so a kill mid-write left a torn file. As with Keras's, the file is not
  fsync'ed each epoch (that cost 8 ms a file here): a killed process's writes reach the disk,
  while an operating-system crash may lose the last backup.
- The epoch a backup holds is stored in the weights file itself (the `graphspec_epoch`
  attribute), so the weights and their epoch are replaced together by the one rename; Keras's
  writes them to two files one after the other, and no `training_metadata.json` is written.
  A backup that Keras's callback wrote (a run killed before this) is still restored.
- It writes in `on_epoch_end`, before the run's history (the callback comes first), so the
  history on disk never records an epoch the backup does not hold: `--resume` reads where to
  go on from the history (batches read from files are drawn by epoch).

Why not the other ways considered: a background writer would let the history get ahead of the
backup (or make the history wait on the thread) and on 2 cores competes with the training
steps for the same CPU; backing up every N seconds means a kill loses up to N seconds and the
history would have to lag likewise. At 10 ms an epoch neither is needed.

The walk uses Keras's own saver (`saving_lib._save_state`, a private function of the pinned
Keras 3.15) with a store that records instead of writing; tests/test_backup.py compares the file
with `save_weights`'s, so a Keras that changes either shows there.

A model that stores a value other than its variables (a layer whose `save_own_variables`
computes what it saves) is backed up by Keras's `save_weights` each epoch, still through the
temporary file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from graphspec import atomic

EPOCH_ATTR = "graphspec_epoch"
BATCH_ATTR = "graphspec_batch"


@dataclass
class Entry:
    """One group of the weights file: its path, its attributes, and the variables it holds by key."""

    path: str
    metadata: dict[str, Any] | None
    variables: list[tuple[str, Any]]

    def dataset(self, key: str) -> str:
        return f"{self.path}/vars/{key}" if self.path else f"vars/{key}"


def _store_class() -> type:
    from keras.src.saving import saving_lib

    class Recorder(saving_lib.H5IOStore):
        """A weights store that writes nothing: it records what Keras's saver would write where."""

        def __init__(self) -> None:  # no file
            self.entries: list[Entry] = []

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: dict | None = None) -> Recorder:
            self.entries.append(Entry(path, metadata, []))
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            self.entries[-1].variables.append((key, value))

    return Recorder


def layout(model: keras.Model) -> list[Entry] | None:
    """What `model.save_weights` writes, as groups of the live variables it reads; None when some
    value saved is not a variable that can be read again later (a computed one)."""
    from keras.src.saving import saving_lib

    recorder = _store_class()()
    saving_lib._save_state(
        model, weights_store=recorder, assets_store=None, inner_path="", visited_saveables=set()
    )
    optimizer = getattr(model, "optimizer", None)
    for entry in recorder.entries:
        values = [value for _, value in entry.variables]
        if all(isinstance(value, keras.Variable) for value in values):
            continue
        # Keras's optimizers save `variable.numpy()` for each of their variables, in order.
        mine = list(optimizer.variables) if optimizer is not None else []
        if (
            entry.path.rsplit("/", 1)[-1] == "optimizer"
            and len(values) == len(mine)
            and [key for key, _ in entry.variables] == [str(i) for i in range(len(mine))]
            and all(np.shape(v) == tuple(w.shape) for v, w in zip(values, mine, strict=True))
        ):
            entry.variables = [(str(i), w) for i, w in enumerate(mine)]
            continue
        return None
    return recorder.entries


def _reader(variables: list[Any]) -> Any:
    """A function that returns the values of `variables` as NumPy arrays, in one call where the
    backend allows (TensorFlow: one graph that reads them all, instead of one eager op each)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        handles = [v.value for v in variables]
        read = tf.function(lambda: [tf.identity(h) for h in handles], autograph=False)
        try:
            read()
        except Exception:  # noqa: BLE001 - variables it cannot read in one graph: one by one
            pass
        else:
            return lambda: [t.numpy() for t in read()]
    return lambda: [keras.ops.convert_to_numpy(v) for v in variables]


def _digest(array: np.ndarray) -> bytes:
    # A variable's dtype and shape never change: its bytes alone tell whether it did.
    return hashlib.blake2b(np.ascontiguousarray(array), digest_size=16).digest()


def _write_dataset(group: Any, key: str, value: np.ndarray) -> None:
    if keras.backend.standardize_dtype(value.dtype) == "bfloat16":
        group.create_dataset(key, data=value).attrs["dtype"] = "bfloat16"  # as Keras writes it
    else:
        group[key] = value


def _replace(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through `write`, which writes the temporary file beside it that it is given
    (h5py and Keras write by name), then rename it onto `path`: a kill at any moment leaves
    `path` as it was or whole. An error removes the temporary file."""
    temporary = atomic.partial_path(path)  # a killed write's is overwritten by the next
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class EpochBackup(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore (same folder, same weights file, restored by Keras), written
    faster and atomically, its epoch inside the file: see the module's docstring. Backs up at
    each epoch's end only."""

    def __init__(self, backup_dir: str | Path, delete_checkpoint: bool = True):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self._layout: list[Entry] | None = None
        self._read: Any = None
        self._key: tuple | None = None
        self._written: list[bytes] | None = None  # digests of what the file on disk holds

    def on_train_begin(self, logs: dict | None = None) -> None:
        # A fit may start from a backup it did not write, with an optimizer of its own.
        self._key, self._written = None, None
        super().on_train_begin(logs)

    def _load_model(self) -> None:
        super()._load_model()
        # The epoch stored in the weights file is the one those weights finished (see above).
        path = Path(self._weights_path)
        if path.exists():
            with h5py.File(path, "r") as file:
                if EPOCH_ATTR in file.attrs:
                    self.model._initial_epoch = int(file.attrs[EPOCH_ATTR])

    def _save_model(self) -> None:
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        # A fit's model keeps its variables; its optimizer may be built after the fit begins.
        key = (id(optimizer), len(optimizer.variables) if optimizer is not None else 0)
        if key != self._key:
            self._key, self._layout, self._written = key, layout(model), None
            variables = [v for entry in self._layout or [] for _, v in entry.variables]
            self._read = _reader(variables) if self._layout is not None else None
        weights = Path(self._weights_path)
        epoch = {EPOCH_ATTR: self._current_epoch, BATCH_ATTR: self._last_batch_seen}
        written: list[bytes] | None = None

        def write(temporary: Path) -> None:
            nonlocal written
            if self._layout is None:
                model.save_weights(str(temporary), overwrite=True)
                with h5py.File(temporary, "r+") as file:
                    file.attrs.update(epoch)
            else:
                written = self._write(temporary, weights, epoch)

        _replace(weights, write)
        self._written = written  # only once the file holds them

    def _write(self, temporary: Path, previous: Path, epoch: dict[str, int]) -> list[bytes]:
        """Write the backup into `temporary`: the arrays changed since `previous` into a copy of
        it, or every array when there is no previous backup of this layout; their digests."""
        assert self._layout is not None
        values = self._read()
        digests = [_digest(v) for v in values]
        if self._written is not None and len(self._written) == len(digests) and previous.is_file():
            shutil.copyfile(previous, temporary)
            with h5py.File(temporary, "r+") as file:
                index = 0
                for entry in self._layout:
                    for name, _ in entry.variables:
                        if digests[index] != self._written[index]:
                            file[entry.dataset(name)][...] = values[index]
                        index += 1
                file.attrs.update(epoch)
            return digests
        with h5py.File(temporary, "w") as file:
            index = 0
            for entry in self._layout:
                # As Keras's H5IOStore: a group with attributes is made even if empty, one
                # without only when a value goes in it.
                if not entry.variables and not entry.metadata:
                    continue
                group = (
                    file.create_group(entry.path).create_group("vars")
                    if entry.path
                    else file.create_group("vars")
                )
                for name, value in (entry.metadata or {}).items():
                    group.attrs[name] = value
                for name, _ in entry.variables:
                    _write_dataset(group, name, values[index])
                    index += 1
            file.attrs.update(epoch)
        return digests
