"""`graphspec tune` workers started at the same moment on a new database share one study: none
fails on Optuna's schema creation (a race on `alembic_version` before graphspec locked it)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
from fixtures.storage_race import open_at_once

from graphspec.tune import open_storage

ROOT = Path(__file__).resolve().parent.parent
SPEC = """\
graphspec: 1
name: tiny
params: {hidden: 4}
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: "${hidden}", activation: relu, in: x}
  y: {type: Dense, units: 1, in: h}
outputs:
  y: {loss: mse}
train: {epochs: 1, batch_size: 16, samples: 32, validation_split: 0.5}
search:
  metric: val_loss
  seed: 0
  pruner: none
  params:
    hidden: {type: int, low: 2, high: 8}
"""


def test_four_workers_started_together_on_a_new_sqlite_database_share_one_study(tmp_path):
    spec, database = tmp_path / "tiny.yaml", tmp_path / "shared.db"
    spec.write_text(SPEC)
    url = f"sqlite:///{database}"
    command = [sys.executable, "-m", "graphspec", "tune", str(spec), "--synthetic", "--storage", url]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    workers = [
        subprocess.Popen(
            [*command, "--trials", "4", "--out", str(tmp_path / "tune"), "--quiet"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        ended = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (_, stderr) in zip(workers, ended, strict=True):
        assert worker.returncode == 0, stderr[-2000:]
    trials = optuna.load_study(study_name="tiny", storage=open_storage(url)).get_trials()
    # Four wanted in all; each worker may start one more while another finishes the fourth.
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 4 <= len(complete) == len(trials) <= 7
    assert len({t.number for t in trials}) == len(trials)


def test_workers_opening_a_new_database_at_once_all_open_it(tmp_path):
    for opener in open_at_once(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path):
        assert opener.returncode == 0, opener.stderr[-2000:]


def test_a_worker_opening_a_database_waits_for_the_one_creating_it(tmp_path):
    """While one worker holds the database's lock (creating Optuna's tables), another's
    opening waits: it runs only once the first has let go."""
    from graphspec import dblock

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    released = threading.Event()
    seen: list[bool] = []

    def opener() -> str:
        seen.append(released.is_set())
        return "opened"

    with ThreadPoolExecutor(1) as pool:
        with dblock._lock(url):
            second = pool.submit(dblock.open_exclusively, url, opener)
            # Were the lock not held, the second worker would open now, with `released` unset.
            time.sleep(0.5)
            released.set()
        assert second.result(timeout=30) == "opened"
    assert seen == [True]


def test_opening_is_retried_after_losing_a_schema_race():
    from sqlalchemy.exc import IntegrityError

    from graphspec import dblock

    tries: list[int] = []

    def opener() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return "opened"

    assert dblock.open_exclusively("mysql://nowhere/db", opener) == "opened"
    assert len(tries) == 2


SHAPED = """\
graphspec: 1
name: shaped
params: {features: 4, classes: 3}
inputs:
  x: {shape: ["${features}"]}
layers:
  h: {type: Dense, units: 8, activation: relu, in: x}
  probs: {type: Dense, units: "${classes}", activation: softmax, in: h}
outputs:
  probs: {loss: categorical_crossentropy}
train: {epochs: 1, batch_size: 16, samples: 32, validation_split: 0.5}
search:
  metric: val_loss
  seed: 0
  sampler: grid
  pruner: none
  params:
    features: {type: categorical, choices: [4, 6]}
    classes: {type: categorical, choices: [3, 5]}
"""


def test_a_param_that_changes_a_shape_gets_synthetic_data_of_its_trials_shapes(tmp_path):
    import keras
    import numpy as np

    from graphspec.keras.train import DataSource
    from graphspec.tune import tune

    spec, folder = tmp_path / "shaped.yaml", tmp_path / "tune"
    spec.write_text(SHAPED)
    try:
        tune(spec, DataSource(synthetic=True), out=folder, trials=4, progress=False)
    finally:
        keras.backend.clear_session()
    study = optuna.load_study(study_name="shaped", storage=open_storage(str(folder / "study.log")))
    trials = study.get_trials()
    # Every combination ran, each to completion: the input's width and the output's classes
    # both change the data a trial needs.
    assert sorted((t.params["features"], t.params["classes"]) for t in trials) == [
        (4, 3),
        (4, 5),
        (6, 3),
        (6, 5),
    ]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [
        t.user_attrs.get("error") for t in trials
    ]
    # The spec's own values use the search's data; each other shape has a file of its own.
    made = {}
    for path in folder.glob("data-*.npz"):
        with np.load(path) as arrays:
            made[path.name] = (arrays["x"].shape, arrays["probs"].shape)
    assert sorted(made.values()) == [((32, 4), (32, 5)), ((32, 6), (32, 3)), ((32, 6), (32, 5))]
    with np.load(folder / "data.npz") as arrays:
        assert (arrays["x"].shape, arrays["probs"].shape) == ((32, 4), (32, 3))
