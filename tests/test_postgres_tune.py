"""`graphspec tune` scales out through a real PostgreSQL server: two workers on one study, one
killed mid-trial, and every trial of the study is run exactly once.

The fixture starts a server of its own on a free loopback port, in a temporary data folder
(`initdb`, `pg_ctl`; as the `postgres` user when the tests run as root, since PostgreSQL refuses
to run as root). Where PostgreSQL or psycopg (SQLAlchemy's driver for postgresql://) is not
installed the test is skipped, saying so: `make postgresql` installs the server on Debian as
root, `pip install -e '.[test]'` the driver.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = """\
graphspec: 1
name: tiny
params: {hidden: 16}
inputs:
  x: {shape: [16]}
layers:
  h: {type: Dense, units: ${hidden}, activation: relu, in: x}
  probs: {type: Dense, units: 4, activation: softmax, in: h}
outputs:
  probs: {loss: categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 4, batch_size: 32, samples: 256, validation_split: 0.25}
search:
  metric: val_loss
  trials: 4
  seed: 0
  pruner: none
  params:
    hidden: {type: int, low: 4, high: 64, log: true}
"""


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """The URL of a fresh database on a PostgreSQL server that lives as long as this module."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed: `make postgresql` installs it (Debian, as root)")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed: pip install -e '.[test]' installs it")
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no postgres user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's temporary folder: that one is private to this user (0700, and pytest
    # sessions reset it), where the postgres user could not reach its data.
    folder = Path(tempfile.mkdtemp(prefix="graphspec-postgres-"))
    data, port = folder / "data", _free_port()
    if prefix:
        shutil.chown(folder, "postgres")
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "graphspec", "-A", "trust"], **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"], **run
    )
    try:
        yield f"postgresql://graphspec@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _worker(spec: Path, folder: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "graphspec", "tune", str(spec), "--synthetic", "--out", str(folder)]
        + ["--storage", url, "--quiet"],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_workers_on_postgresql_one_killed_run_every_trial_once(tmp_path, postgres_url):
    import optuna

    from graphspec.tune import open_storage

    spec, folder = tmp_path / "tiny.yaml", tmp_path / "tune"
    spec.write_text(SPEC)
    storage = open_storage(postgres_url)

    def trials(*states):
        try:
            return optuna.load_study(study_name="tiny", storage=storage).get_trials(states=states or None)
        except KeyError:  # the study is not created yet
            return []

    running = optuna.trial.TrialState.RUNNING
    doomed, survivor = _worker(spec, folder, postgres_url), _worker(spec, folder, postgres_url)
    try:
        deadline = time.monotonic() + 300
        pid = str(doomed.pid)
        while (
            not any(t.user_attrs.get("worker", "").endswith(f":{pid}") for t in trials(running))
            and doomed.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert doomed.poll() is None, doomed.communicate()[1][-2000:]
        os.kill(doomed.pid, signal.SIGKILL)  # mid-trial
    finally:
        doomed.kill()
        doomed.wait()
    _, stderr = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, stderr[-2000:]
    # A worker started later fails the dead worker's trial (its lock is free) and runs none twice.
    resumed = subprocess.run(
        [sys.executable, "-m", "graphspec", "tune", "--resume", str(folder), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    every = trials()
    numbers = [t.number for t in every]
    assert len(set(numbers)) == len(numbers)
    assert not [t for t in every if t.state == running]
    failed = [t for t in every if t.state == optuna.trial.TrialState.FAIL]
    assert [t.user_attrs["error"] for t in failed] == ["its worker process died"]
    assert failed[0].user_attrs["worker"].endswith(f":{pid}")
    done = [t for t in every if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4
    # Each completed trial ran once, into a run directory of its own.
    runs = [t.user_attrs["run_dir"] for t in done]
    assert len(set(runs)) == len(runs)
    for t in done:
        assert json.loads((Path(t.user_attrs["run_dir"]) / "trial.json").read_text())["trial"] == t.number


def test_four_workers_opening_a_new_postgresql_database_at_once_all_open_it(tmp_path, postgres_url):
    """Workers started together on a new database wait for one another's schema creation (an
    advisory lock) rather than race to stamp its version."""
    import psycopg
    from fixtures.storage_race import open_at_once

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE DATABASE together")
    url = postgres_url.rsplit("/", 1)[0] + "/together"
    for opener in open_at_once(url, tmp_path):
        assert opener.returncode == 0, opener.stderr[-2000:]
