"""The per-epoch backup behind `--resume` (graphspec.keras.backup): it holds what Keras's own
`save_weights` writes, restores weights, optimizer and epoch, catches a change to a frozen
layer's weights, and a kill in the middle of writing one leaves the previous one whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np

from graphspec.keras.backup import EPOCH_ATTR, EpochBackup

ROOT = Path(__file__).resolve().parent.parent


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="frozen"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(2, name="head"),
        ]
    )
    model.get_layer("frozen").trainable = False
    model.compile(optimizer="adam", loss="mse")
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")


def _content(path: Path) -> dict[str, tuple[dict, bytes | None]]:
    """Every group and dataset of a weights file: its attributes and bytes."""
    found: dict[str, tuple[dict, bytes | None]] = {}
    with h5py.File(path, "r") as file:
        file.visititems(
            lambda name, item: found.__setitem__(
                name,
                (
                    {k: np.asarray(v).tolist() for k, v in item.attrs.items()},
                    np.asarray(item).tobytes() if isinstance(item, h5py.Dataset) else None,
                ),
            )
        )
    return found


class _ChangeFrozen(keras.callbacks.Callback):
    """Sets the frozen layer's kernel before epoch 2: training never changes it, this does."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 2:
            kernel = self.model.get_layer("frozen").kernel
            kernel.assign(np.full(kernel.shape, 0.5, "float32"))


def test_the_backup_holds_what_keras_save_weights_writes_and_restores_it(tmp_path):
    model = _model()
    x, y = _data()
    folder = tmp_path / "backup"
    model.fit(
        x, y, batch_size=8, epochs=4, verbose=0, callbacks=[_ChangeFrozen(), EpochBackup(folder, False)]
    )
    model.save_weights(tmp_path / "keras.weights.h5")
    ours, theirs = _content(folder / "latest.weights.h5"), _content(tmp_path / "keras.weights.h5")
    assert ours == theirs  # every array, frozen ones (changed before epoch 2) and Adam's alike
    assert (model.get_layer("frozen").kernel.numpy() == 0.5).all()
    with h5py.File(folder / "latest.weights.h5", "r") as file:
        assert int(file.attrs[EPOCH_ATTR]) == 4

    restored = _model()
    restored.optimizer.build(restored.trainable_variables)
    backup = EpochBackup(folder, False)
    backup.set_model(restored)
    backup.on_train_begin()
    assert restored._initial_epoch == 4
    for mine, original in [
        (restored.variables, model.variables),
        (restored.optimizer.variables, model.optimizer.variables),
    ]:
        assert [v.numpy().tobytes() for v in mine] == [v.numpy().tobytes() for v in original]


# A child trains 3 epochs; Keras's save_weights records each epoch's state beside the backup;
# the third backup is killed (SIGKILL) halfway through copying the second into its temporary file.
_KILLED = """
import os, shutil, signal, sys
sys.path.insert(0, {tests!r})
import keras
from test_backup import _data, _model
from graphspec.keras import backup
folder = {folder!r}

class Reference(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.save_weights(f"{{folder}}-epoch{{epoch + 1}}.weights.h5")

copy = shutil.copyfile

def killed_copy(source, target):
    if "latest" in str(source) and os.path.exists(f"{{folder}}-epoch3.weights.h5"):
        data = open(source, "rb").read()
        with open(target, "wb") as file:
            file.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return copy(source, target)

backup.shutil.copyfile = killed_copy
x, y = _data()
callbacks = [backup.EpochBackup(folder, False), Reference()]
callbacks.reverse()  # the reference first, so the kill comes in epoch 3's backup
_model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
"""


def test_a_kill_in_the_middle_of_a_backup_leaves_the_previous_one_to_resume_from(tmp_path):
    folder = tmp_path / "backup"
    code = _KILLED.format(tests=str(ROOT / "tests"), folder=str(folder))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    torn = folder / ".latest.partial.weights.h5"
    assert torn.is_file()  # the kill came mid-write
    # The backup is epoch 2's, whole: what Keras's save_weights wrote at that epoch's end.
    assert _content(folder / "latest.weights.h5") == _content(tmp_path / "backup-epoch2.weights.h5")

    # Resumed, it restores epoch 2 and goes on; its next backup takes over the torn file.
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[EpochBackup(folder, False)])
    assert len(model.history.history["loss"]) == 1
    assert not torn.exists()
    with h5py.File(folder / "latest.weights.h5", "r") as file:
        assert int(file.attrs[EPOCH_ATTR]) == 3
