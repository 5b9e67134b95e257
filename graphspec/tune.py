"""`graphspec tune`: the spec's `search:` section run as an Optuna study.

A tune lives in one folder (`runs/<spec name>/tune-<timestamp>/`, or `--out`):

    tune.json        what the study searches: spec, overrides, data, storage, study name, seed
    study.log        the study itself (an Optuna journal file) unless a storage URL is given
    data.npz         the synthetic samples every trial trains on (with --synthetic)
    trials/0007/     each trial's run directory, as `graphspec train` writes it, plus trial.json
    workers/         a lock file per running worker, so a resumed tune knows whose trials died
    best.yaml        the best trial's spec, fully resolved: it validates and builds on its own
                     (its nested specs beside it in best/)
    trials.csv       one row per trial
    history.png, importances.png

The study is the only state: a tune killed mid-way is resumed by running it again on the same
folder (or `--resume DIR`), and loses at most the trial that was running. Several processes, on
one machine or several, given the same storage share one study. A pruned trial keeps its run
directory, cut at the epoch it was stopped, marked `"state": "pruned"` in its trial.json.

TensorFlow is imported only when a trial trains (`graphspec.keras`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec import atomic, dblock, flock
from graphspec import budget as command_budget
from graphspec import run_dir as rd
from graphspec.errors import Diagnostic, SpecErrors, printable
from graphspec.fingerprint import fingerprint
from graphspec.policy import Policy
from graphspec.spec import search as search_spec
from graphspec.spec.load import load_text

if TYPE_CHECKING:
    import optuna

    from graphspec.keras.train import DataSource
    from graphspec.spec.load import LoadedSpec

TUNE_FILE, STUDY_FILE, DATA_FILE, TRIALS_DIR = "tune.json", "study.log", "data.npz", "trials"
WORKERS_DIR = "workers"  # a lock per running worker: see graphspec.flock
BEST_SPEC, TRIALS_CSV, TRIAL_FILE = "best.yaml", "trials.csv", "trial.json"
# What tune.json holds, checked whole before any of it is used.
TUNE_FIELDS = {
    "spec": "str",
    "overrides": "strings",
    "source": rd.SOURCE_FIELDS,
    "storage": "str",
    "study": "str",
    "seed": "int",
    "digest": "str",
}
HISTORY_PNG, IMPORTANCES_PNG = "history.png", "importances.png"
# A trial is run by a worker: host and process id, so that a resumed tune on the same host can
# tell a trial whose process died (it fails it) from one another live process is running.
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# Database storages beat every minute; a trial silent for three is failed by the next worker, on
# any machine. Journal files have no heartbeat: dead local workers are found by process id.
HEARTBEAT_S, GRACE_S = 60, 180


@dataclass
class TuneResult:
    """What a tune left: its folder, the study, the best trial and the files written."""

    directory: Path
    study_name: str
    storage: str
    metric: str
    goal: str
    counts: dict[str, int]
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_spec: Path | None = None
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _TrialFailed(Exception):
    """A trial's training raised: the trial is marked failed and the search goes on."""


def tune(
    spec_path: Path,
    source: DataSource,
    *,
    overrides: list[str] | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    progress: bool = True,
    root: Path | None = None,
) -> TuneResult:
    """Run (or resume, or join) the search `spec_path`'s `search:` section describes.

    `trials` is the number of finished (complete or pruned) trials the study should hold across
    every worker; `timeout` bounds this call in seconds. Both default to the spec's. Nested
    specs and includes are read only under `root` (default: the spec's folder). Bad input
    (no search section, a storage that cannot be opened, a metric the model does not log, data
    that does not fit) raises `SpecErrors` before the study is touched.
    """
    spec_path = Path(spec_path)
    overrides = list(overrides or [])
    # `--resume` takes the spec's path from tune.json, which anyone who can write the tune
    # folder could have changed: it is read only if it is a spec.
    refused = Policy(root).for_spec(spec_path).file_refusal(spec_path)
    if refused is not None:
        raise SpecErrors.single(f"cannot read {spec_path}: {refused.message}", hint=refused.hint)
    from graphspec.spec.files import read_regular

    try:
        # As every spec file is read: a regular file of at most 5 MB, charged to the budget.
        data = read_regular(spec_path, str(spec_path))
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except OSError as exc:
        raise SpecErrors.single(f"cannot read {spec_path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecErrors.single(f"cannot read {spec_path}: it is not UTF-8 text") from None
    # Every trial loads this text, never the file again: an edit during a search changes nothing.
    loaded = load_text(text, str(spec_path), overrides, base=spec_path, root=root)
    search = loaded.spec.search
    if search is None:
        raise SpecErrors.single(
            f"{spec_path} has no search section, so there is nothing to tune",
            hint="add `search:` with a metric and the params to vary (see the README)",
        )
    n_trials = trials if trials is not None else search.trials
    budget = timeout if timeout is not None else search_spec.timeout_seconds(search.timeout)
    if n_trials is None and budget is None:
        raise SpecErrors.single(
            "say how long to search: search.trials or search.timeout in the spec, or --trials or --timeout",
            loaded.location("search", key=True),
            sources=loaded.diagnostics.sources,
        )
    source = _checked_source(loaded, source)
    from graphspec.keras.data import check_string_inputs

    check_string_inputs(loaded)
    # Folders and tables are bound now, once: a bad file, label or column fails here, before
    # anything is written and before trial 0.
    bound = _bound(loaded, source)

    directory = _directory(loaded, out, runs_root)
    wanted = {
        "spec": str(spec_path.resolve()),
        "overrides": overrides,
        "source": source.describe(),
        # A spec's storage is a file in the tune folder (checked when it was loaded).
        "storage": _storage_setting(storage) if storage is not None else search.storage or STUDY_FILE,
        "study": study_name or search.study or loaded.name,
        "seed": _seed(loaded),
        "digest": _digest(loaded, source, bound),
    }
    explicit = {"storage": storage is not None, "study": study_name is not None}
    settings = _existing(directory, wanted, explicit) or wanted
    # A relative journal lies in the tune folder, and is made there once the folder exists.
    journal = "://" not in settings["storage"] and not Path(settings["storage"]).is_absolute()
    # Everything that can be wrong is found before anything is written: a storage that cannot be
    # opened, data that does not fit, a metric the model does not log.
    opened = None if journal else open_storage(storage_location(settings, directory))

    from graphspec.keras import search as keras_search
    from graphspec.keras.train import DataSource as Source

    data, arrays = directory / DATA_FILE, None
    train = loaded.spec.train
    if source.synthetic and not data.exists():
        arrays = keras_search.synthetic_arrays(
            loaded, kind=source.kind, samples=train.samples, seed=settings["seed"], seq_len=train.seq_len
        )
    validation = bool(train.validation_split) or source.val_data is not None
    if bound is not None:
        probe = bound[0]
    else:
        probe = arrays if arrays is not None else (data if source.synthetic else source.data)
    reported = keras_search.reported_metrics(loaded, probe, validation)
    if search.metric not in reported:
        raise SpecErrors.single(
            f"search.metric '{search.metric}' is not a metric this model logs",
            loaded.location("search", "metric"),
            sources=loaded.diagnostics.sources,
            hint="it logs: " + ", ".join(reported),
        )

    # Trials bind the data anew: what was bound here (a table's open shards) is not held.
    bound = probe = None
    used_seed = settings["seed"]
    fresh = not directory.exists()
    settings = _claim(directory, wanted, explicit)
    try:
        trial_source = source
        if source.synthetic:
            if not data.exists():
                if settings["seed"] != used_seed:  # another worker claimed the folder first, with its seed
                    arrays = keras_search.synthetic_arrays(
                        loaded,
                        kind=source.kind,
                        samples=train.samples,
                        seed=settings["seed"],
                        seq_len=train.seq_len,
                    )
                keras_search.save_arrays(arrays, data)
            trial_source = Source(data=data.resolve())
        if opened is None:
            opened = open_storage(storage_location(settings, directory))

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = _study(loaded, opened, settings["study"], settings["seed"])
    except BaseException:
        # A tune that fails before its study starts leaves nothing behind (not tune.json, not
        # data.npz) in a folder it made.
        if fresh:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    lock = flock.WorkerLock(directory / WORKERS_DIR, WORKER) if flock.AVAILABLE else None
    try:
        _fail_dead_trials(study, opened, settings["study"], directory)
        _optimize(
            study,
            loaded,
            text,
            spec_path,
            overrides,
            settings,
            trial_source,
            directory,
            n_trials,
            budget,
            progress,
            root,
            synthetic=source.kind if source.synthetic else None,
        )
    finally:
        if lock is not None:
            lock.release()
    return report(study, directory, settings, text, spec_path, root)


def _optimize(
    study: optuna.Study,
    loaded: LoadedSpec,
    text: str,
    spec_path: Path,
    overrides: list[str],
    settings: dict[str, Any],
    trial_source: DataSource,
    directory: Path,
    n_trials: int | None,
    budget: float | None,
    progress: bool,
    root: Path | None,
    synthetic: str | None = None,
) -> None:
    """Run trials until the study holds `n_trials` finished ones or `budget` seconds have passed.
    `synthetic`: the kind of synthetic data `trial_source` holds, made for the spec's values
    (None: the user's data)."""
    import optuna

    objective = _Objective(
        text,
        spec_path,
        overrides + _seed_override(loaded, settings["seed"]),
        loaded,
        trial_source,
        directory,
        settings["study"],
        root,
        synthetic={"kind": synthetic, "seed": settings["seed"]} if synthetic else None,
    )
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    live = done + (optuna.trial.TrialState.RUNNING,)
    remaining = None if n_trials is None else max(0, n_trials - len(study.get_trials(False, states=live)))
    if remaining != 0:
        # Stop once the study holds enough trials, other workers' running ones counted: they
        # will finish, and running one more here would only overshoot.
        callbacks = [optuna.study.MaxTrialsCallback(n_trials, states=live)] if n_trials else []
        callbacks.append(_report_failed)
        # Optuna reports a failed trial with its traceback; graphspec's one line replaces it.
        optuna_logger = logging.getLogger("optuna.study._optimize")
        optuna_logger.addFilter(_OPTUNA_FAILURES)
        try:
            with warnings.catch_warnings():  # the progress bar is "experimental" in Optuna's words
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=budget,
                    callbacks=callbacks,
                    catch=(_TrialFailed,),
                    show_progress_bar=progress,
                    gc_after_trial=False,
                )
        except SpecErrors as exc:
            number, values = objective.current
            exc.diagnostics.items.insert(0, _context(f"trial {number} failed, with {_values_text(values)}"))
            raise SpecErrors(exc.diagnostics) from None
        finally:
            optuna_logger.removeFilter(_OPTUNA_FAILURES)


class _OptunaFailures(logging.Filter):
    """Drops Optuna's messages about a failed trial (one comes with a traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not re.match(r"Trial \d+ failed with ", record.getMessage())


_OPTUNA_FAILURES = _OptunaFailures()


def _report_failed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line on stderr for a trial of this worker that failed: its values and why."""
    import optuna
    from tqdm import tqdm

    if trial.state != optuna.trial.TrialState.FAIL:
        return
    reason = trial.user_attrs.get("error") or "its result was not a number"
    line = f"warning: trial {trial.number} failed, with {_values_text(trial.params)}: {reason}"
    tqdm.write(printable(line, newlines=False), file=sys.stderr)  # above the progress bar, if any


def _context(message: str) -> Diagnostic:
    return Diagnostic(message)


def _values_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()) or "no values"


def _checked_source(loaded: LoadedSpec, source: DataSource) -> DataSource:
    """The data source with its synthetic kind decided and its paths absolute; problems found
    without TensorFlow or reading the data (`_bound` reads it)."""
    from dataclasses import replace

    if source.synthetic == (source.data is not None):
        raise SpecErrors.single("say what to train on: --synthetic, or --data PATH (.npz, folder or table)")
    if source.val_data is not None and source.data is None:
        raise SpecErrors.single("--val-data needs --data: synthetic runs make their own validation data")
    train = loaded.spec.train
    metric = loaded.spec.search.metric
    if metric.startswith("val_") and not train.validation_split and source.val_data is None:
        raise SpecErrors.single(
            f"search.metric '{metric}' is measured on validation data, and this search has none",
            loaded.location("search", "metric"),
            hint="set train.validation_split (--set train.validation_split=0.2), or give --val-data",
            sources=loaded.diagnostics.sources,
        )
    if source.synthetic:
        # A search compares trials on one task: teacher targets by default, as random ones teach nothing.
        kind = source.kind or (train.synthetic if "synthetic" in train.model_fields_set else "teacher")
        if kind not in ("random", "teacher"):
            raise SpecErrors.single(
                f"unknown kind of synthetic data '{kind}'", hint="use 'random' or 'teacher'"
            )
        return replace(source, kind=kind)
    return replace(
        source,
        data=Path(source.data).resolve(),
        val_data=Path(source.val_data).resolve() if source.val_data else None,
    )


def _bound(loaded: LoadedSpec, source: DataSource) -> tuple[Any, Any, dict[str, str]] | None:
    """The training and validation examples of a search on a folder or a table, bound to the
    spec's inputs and outputs as `train` binds them (a table scanned cell by cell, image
    headers read, labels checked; the validation data against the training data's classes),
    with a digest of the files each lists; None for synthetic data and .npz arrays. No
    TensorFlow. Each trial binds its own spec again, as `train` does: a trial's values may
    change what the data must fit, and the scan costs less than one epoch's reading."""
    from graphspec.data import source as data_source
    from graphspec.data.examples import bind, is_npz

    if source.synthetic or (is_npz(source.data) and (source.val_data is None or is_npz(source.val_data))):
        return None
    examples = bind(loaded, source.data, stream=True)
    validation = (
        bind(loaded, source.val_data, classes=examples.classes, stream=True)
        if source.val_data is not None
        else None
    )
    digests = {
        name: data_source.listing_digest(_files_of(bound))
        for name, bound in (("data", examples), ("val_data", validation))
        if bound is not None
    }
    return examples, validation, digests


def _files_of(examples: Any) -> list[Path]:
    """The files binding listed (not listed again: the listing is charged to `data-files`):
    a table's shards, a folder's example files, or the one .npz file."""
    from graphspec.data.stream import TableStream

    if isinstance(examples, TableStream):
        return list(examples.table.shards)
    if examples.files:
        return list(next(iter(examples.files.values()))[0])
    return [Path(examples.path)]


def _directory(loaded: LoadedSpec, out: Path | None, runs_root: Path) -> Path:
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise SpecErrors.single(f"{out} is a file, not a tune folder")
        if out.is_dir() and any(out.iterdir()) and not (out / TUNE_FILE).exists():
            raise SpecErrors.single(
                f"{out} is not empty and holds no tune ({TUNE_FILE})",
                hint="name a new folder, or the folder of the tune to resume",
            )
        return out
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = rd.checked_base(runs_root, loaded.name)
    path, count = base / f"tune-{stamp}", 1
    while path.exists():
        count += 1
        path = base / f"tune-{stamp}-{count}"
    return path


def _seed(loaded: LoadedSpec) -> int:
    spec = loaded.spec
    if spec.train.seed is not None:
        return spec.train.seed
    return spec.search.seed if spec.search.seed is not None else secrets.randbelow(2**31)


def _seed_override(loaded: LoadedSpec, seed: int) -> list[str]:
    # Every trial starts from the same seed, so trials differ by their values, not their luck.
    return [] if loaded.spec.train.seed is not None else [f"train.seed={seed}"]


def _digest(loaded: LoadedSpec, source: DataSource, bound: tuple | None = None) -> str:
    """A hash of what makes trials comparable: the resolved spec, the search, the data. Data is
    known by its paths; a folder's or a table's also by its files' paths, sizes and modification
    times (`graphspec.data.source.listing_digest`), and the class names binding found."""
    data = {
        "fingerprint": fingerprint(loaded).as_dict(),
        "search": loaded.spec.search.model_dump(mode="json", exclude={"trials", "timeout", "storage"}),
        "source": source.describe(),
    }
    if bound is not None:  # .npz and synthetic searches keep the digest they had
        examples, _, files = bound
        data["files"], data["classes"] = files, examples.classes
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _storage_setting(storage: str) -> str:
    """What tune.json records for a `--storage`: a database URL as given, or a journal file's
    absolute path (a spec's storage, relative to the tune folder, is recorded as written)."""
    return storage if "://" in storage else str(Path(storage).resolve())


def storage_location(settings: dict[str, Any], directory: Path) -> str:
    """The storage a tune's settings name, with the default journal found in its folder."""
    storage = settings["storage"]
    return storage if "://" in storage or Path(storage).is_absolute() else str(Path(directory) / storage)


def _existing(directory: Path, wanted: dict[str, Any], explicit: dict[str, bool]) -> dict[str, Any] | None:
    """The settings of the tune already in `directory`, checked to be this search; None if none."""
    path = directory / TUNE_FILE
    if not path.exists():
        return None
    settings = rd.read_record(path, TUNE_FIELDS, hint=f"start a new tune with another --out, or mend {path}")
    if settings.get("digest") != wanted["digest"]:
        raise SpecErrors.single(
            f"{directory} holds a search of another spec, other overrides, search or data than this one",
            hint="its trials could not be compared with these: start a new tune with another --out",
        )
    for key in ("storage", "study"):
        if explicit[key] and settings[key] != wanted[key]:
            held, given = settings[key], wanted[key]
            if key == "storage":
                held, given = storage_location(settings, directory), storage_location(wanted, directory)
            raise SpecErrors.single(
                f"{directory} holds a study in {key} '{_safe(held)}', not '{_safe(given)}'",
                hint=f"leave --{key} out to resume it",
            )
    return settings


def _claim(directory: Path, wanted: dict[str, Any], explicit: dict[str, bool]) -> dict[str, Any]:
    """Create the tune folder's tune.json unless there is one, and return the one there.

    Workers started together race here: the file is linked into place, which fails for all but
    one, and the others read what the winner wrote (its seed included).
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TUNE_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tune.", suffix=".json")
        os.fchmod(fd, 0o666 & ~atomic.umask())  # mkstemp's 0600 would hide it from colleagues
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(wanted, indent=2) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return _existing(directory, wanted, explicit)


def _safe(url: str) -> str:
    """A storage URL with its password hidden."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", str(url))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage at `url`: a database URL (`sqlite:///x.db`, `postgresql://...`) or the
    path of a journal file. One that cannot be opened is a `SpecErrors` naming it."""
    import optuna

    try:
        if "://" in url:

            def database() -> optuna.storages.RDBStorage:
                with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
                    )

            # Workers started together on a new database would race to create its tables.
            return dblock.open_exclusively(url, database)
        path = Path(url)
        if path.is_dir():
            raise ValueError("it is a folder; a journal storage is a file")
        if not path.parent.is_dir():
            raise ValueError(f"folder {path.parent} does not exist")
        lock = flock.FileLock(f"{path}.flock") if flock.AVAILABLE else None
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path), lock))
    except Exception as exc:
        reason = " ".join(str(exc).split("\n")[0].split())[:300] or type(exc).__name__
        raise SpecErrors.single(
            f"cannot open storage '{_safe(url)}': {reason}",
            hint="a database URL such as sqlite:///study.db or "
            "postgresql://user@host/db, or the path of a journal file",
        ) from None


def _study(loaded: LoadedSpec, storage: Any, name: str, seed: int) -> optuna.Study:
    import optuna

    search = loaded.spec.search
    sampler_name = search_spec.method_name(search.sampler)
    where = loaded.location("search", "sampler")
    try:
        with warnings.catch_warnings():  # the QMC sampler is "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            cls = getattr(optuna.samplers, search_spec.SAMPLERS[sampler_name][0])
            args = search_spec.method_args(search.sampler)
            if sampler_name == "grid":
                sampler = cls(search_spec.grid(search), seed=seed)
            else:
                sampler = cls(seed=seed, **args)
            where = loaded.location("search", "pruner")
            pruner_class = search_spec.PRUNERS[search_spec.method_name(search.pruner)][0]
            pruner = getattr(optuna.pruners, pruner_class)(**search_spec.method_args(search.pruner))
    except (TypeError, ValueError) as exc:
        raise SpecErrors.single(
            f"Optuna refused it: {exc}", where, sources=loaded.diagnostics.sources
        ) from None
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            sampler=sampler,
            pruner=pruner,
            direction=search.goal,
            load_if_exists=True,
        )
    except Exception as exc:
        raise SpecErrors.single(f"cannot create or load study '{name}': {exc}") from None
    if study.direction.name.lower() != search.goal:
        raise SpecErrors.single(
            f"study '{name}' was made to {study.direction.name.lower()}, and the spec says {search.goal}",
            loaded.location("search", "goal"),
            sources=loaded.diagnostics.sources,
        )
    return study


def _fail_dead_trials(study: optuna.Study, storage: Any, name: str, directory: Path) -> None:
    """Mark failed the running trials whose worker is dead, and remove the half-written run
    directories they left. A worker is known dead when its lock in the tune folder is free (or,
    without one, when its process is gone from this host). A trial killed before it recorded its
    worker is dead when no other worker of this folder is alive. Database storages also fail
    trials whose heartbeat stopped, on any machine."""
    import optuna

    host, _ = WORKER.rsplit(":", 1)
    workers = directory / WORKERS_DIR
    study_id = storage.get_study_id_from_name(name)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        if worker:
            alive = flock.worker_alive(workers, worker) if flock.AVAILABLE else None
            if alive is None:
                worker_host, _, pid = worker.rpartition(":")
                alive = worker_host != host or not pid.isdigit() or _alive(int(pid))
        else:
            alive = (
                isinstance(storage, optuna.storages.RDBStorage)
                or not flock.AVAILABLE
                or bool([w for w in flock.live_workers(workers) if w != WORKER])
            )
        if alive:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "error", "its worker process died")
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        for partial in (directory / TRIALS_DIR).glob(f".{trial.number:04d}.partial*"):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class _Objective:
    """One trial: the spec with the trial's values as overrides, trained into its run directory."""

    def __init__(
        self,
        text: str,
        spec_path: Path,
        overrides: list[str],
        loaded: LoadedSpec,
        source: DataSource,
        directory: Path,
        study_name: str,
        root: Path | None,
        synthetic: dict[str, Any] | None = None,
    ):
        self.text, self.spec_path, self.overrides, self.root = text, spec_path, overrides, root
        # The synthetic data's kind and seed, for a trial whose shapes the search's data does
        # not fit (a param that sizes an input): its data is made for its own shapes.
        self.synthetic = synthetic
        self.search = loaded.spec.search
        self.source, self.directory, self.study_name = source, directory, study_name
        self.current: tuple[int, dict[str, Any]] = (-1, {})

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from graphspec.keras import search as keras_search
        from graphspec.keras.train import DataSource, train

        values = {path: _suggest(trial, path, param) for path, param in self.search.params.items()}
        self.current = (trial.number, values)
        overrides = self.overrides + [f"{path}={json.dumps(value)}" for path, value in values.items()]
        trial.set_user_attr("worker", WORKER)
        trial.set_user_attr("overrides", overrides)
        with command_budget.fresh():  # each trial's load is charged as a command of its own
            loaded = load_text(self.text, str(self.spec_path), overrides, base=self.spec_path, root=self.root)
        keras_search.fresh_session()
        source = self.source
        if self.synthetic is not None:
            data = keras_search.data_for(loaded, source.data, self.directory, **self.synthetic)
            source = DataSource(data=data)
            keras_search.fresh_session()
        reporter = keras_search.TrialReporter(trial, self.search.metric)
        out = self.directory / TRIALS_DIR / f"{trial.number:04d}"
        try:
            # Each trial reads its data as a `train` command would, charged to a budget of its
            # own: the tenth trial is not refused for the data the nine before it read.
            with command_budget.fresh():
                result = train(loaded, source, out=out, verbose=0, extra_callbacks=[reporter])
        except SpecErrors:
            raise
        except KeyboardInterrupt:
            # `graphspec train` keeps an interrupted run to resume it; a trial is never resumed
            # (the study fails it and samples anew), so its half-written run goes.
            for partial in out.parent.glob(f".{out.name}.partial*"):
                shutil.rmtree(partial, ignore_errors=True)
            raise
        except Exception as exc:
            message = " ".join(str(exc).split())[:500] or type(exc).__name__
            trial.set_user_attr("error", message)
            raise _TrialFailed(message) from exc
        if reporter.missing is not None:
            shutil.rmtree(result.run_dir, ignore_errors=True)
            raise SpecErrors.single(
                f"search.metric '{self.search.metric}' is not logged by this trial's model",
                hint="it logs: " + ", ".join(reporter.missing),
            )
        state = "pruned" if reporter.pruned else "complete"
        value = reporter.values[-1] if reporter.values else math.nan
        record = {
            "study": self.study_name,
            "trial": trial.number,
            "state": state,
            "metric": self.search.metric,
            "value": value,
            "epochs": len(reporter.values),
            "params": values,
            "overrides": overrides,
        }
        atomic.write_text(result.run_dir / TRIAL_FILE, json.dumps(record, indent=2) + "\n")
        trial.set_user_attr("run_dir", str(result.run_dir.resolve()))
        trial.set_user_attr("fit_s", round(reporter.fit_seconds, 4))
        if reporter.pruned:
            raise optuna.TrialPruned(f"pruned after epoch {len(reporter.values)}")
        return value


def _suggest(trial: optuna.Trial, path: str, param: search_spec.SearchParam) -> Any:
    if param.type == "categorical":
        return trial.suggest_categorical(path, param.choices)
    if param.type == "int":
        return trial.suggest_int(path, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(path, param.low, param.high, step=param.step, log=param.log)


def report(
    study: optuna.Study,
    directory: Path,
    settings: dict[str, Any],
    text: str,
    spec_path: Path,
    root: Path | None = None,
) -> TuneResult:
    """Write the tune's results (trials.csv, best.yaml, pictures) and say what they are."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    counts = {
        state.name.lower(): sum(t.state == state for t in trials)
        for state in (states.COMPLETE, states.PRUNED, states.FAIL, states.RUNNING)
    }
    loaded = load_text(text, str(spec_path), settings["overrides"], base=spec_path, root=root)
    search = loaded.spec.search
    result = TuneResult(
        directory,
        settings["study"],
        _safe(storage_location(settings, directory)),
        search.metric,
        search.goal,
        counts,
    )
    _write_trials_csv(trials, list(search.params), directory / TRIALS_CSV)
    result.files.append(directory / TRIALS_CSV)
    complete = [t for t in trials if t.state == states.COMPLETE]
    if complete:
        best = study.best_trial
        result.best_number, result.best_value, result.best_params = best.number, best.value, dict(best.params)
        best_loaded = load_text(text, str(spec_path), best.user_attrs["overrides"], base=spec_path, root=root)
        header = (
            f"# The best trial ({best.number}) of study '{settings['study']}': "
            f"{search.metric} = {best.value:.6g}. Written by graphspec tune.\n"
        )
        _write_best(best_loaded, directory, header)
        result.best_spec = directory / BEST_SPEC
        result.files.append(result.best_spec)
    else:
        result.notes.append("no trial completed, so there is no best spec")
    result.files.append(_plot_history(trials, search.metric, search.goal, directory / HISTORY_PNG))
    try:
        # Optuna warns, with its own file and line, that too few trials give equal importances:
        # said once as graphspec's note instead.
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always", UserWarning)
            importances = optuna.importance.get_param_importances(study)
    except Exception as exc:  # importances are a picture: too few trials must not fail the tune
        result.notes.append(f"no parameter importances yet: {exc}")
    else:
        if any("too small to compute importances" in str(w.message) for w in warned):
            result.notes.append("parameter importances are drawn equal: too few trials to compare them")
        result.files.append(_plot_importances(importances, search.metric, directory / IMPORTANCES_PNG))
    return result


def _write_best(loaded: LoadedSpec, directory: Path, header: str) -> None:
    """best.yaml: the expanded spec, with each nested spec written resolved beside it (in
    best/), so that it validates and builds on its own, its folder being the policy's root."""
    from dataclasses import replace

    documents = rd.resolved_documents(loaded, BEST_SPEC)
    data = loaded.expansion.data
    if loaded.nested:
        layers = dict(data["layers"])
        for node in loaded.nested:
            layer = {k: v for k, v in layers[node].items() if k != "params"}
            layers[node] = {**layer, "spec": documents[BEST_SPEC]["layers"][node]["spec"]}
        data = {**data, "layers": layers}
    text = replace(loaded, expansion=replace(loaded.expansion, data=data)).expanded()
    text = text.replace(
        "# Nested spec paths are relative to the folder of the original spec.\n",
        "# Nested spec paths are relative to this file's folder.\n",
    )
    for relative, document in documents.items():
        if relative != BEST_SPEC:
            rd.write_atomically(directory / relative, rd.spec_text(document, header))
    rd.write_atomically(directory / BEST_SPEC, header + text)


def _write_trials_csv(trials: list, params: list[str], path: Path) -> None:
    with atomic.replacing(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["number", "state", "value", *params, "epochs", "duration_s", "fit_s", "worker", "run_dir"]
        )
        for t in trials:
            duration = (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else ""
            )
            value = (
                t.value
                if t.value is not None
                else (t.intermediate_values[t.last_step] if t.last_step is not None else "")
            )
            writer.writerow(
                [
                    t.number,
                    t.state.name.lower(),
                    value,
                    *(t.params.get(p, "") for p in params),
                    len(t.intermediate_values),
                    duration,
                    t.user_attrs.get("fit_s", ""),
                    t.user_attrs.get("worker", ""),
                    t.user_attrs.get("run_dir", ""),
                ]
            )


def _plot_history(trials: list, metric: str, goal: str, path: Path) -> Path:
    """Each trial's value by trial number, pruned trials at their last reported value, and the
    best so far as a line."""
    import optuna
    from matplotlib.figure import Figure

    states = optuna.trial.TrialState
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    done = sorted((t for t in trials if t.state == states.COMPLETE), key=lambda t: t.number)
    pruned = [t for t in trials if t.state == states.PRUNED and t.last_step is not None]
    if done:
        axes.scatter([t.number for t in done], [t.value for t in done], label="complete", zorder=3)
        best, line = None, []
        for t in done:
            if best is None or (t.value < best if goal == "minimize" else t.value > best):
                best = t.value
            line.append(best)
        axes.step([t.number for t in done], line, where="post", color="tab:red", label="best so far")
    if pruned:
        axes.scatter(
            [t.number for t in pruned],
            [t.intermediate_values[t.last_step] for t in pruned],
            marker="x",
            color="grey",
            label="pruned (last epoch)",
        )
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    axes.set_title(f"Optimisation history ({goal})")
    if done or pruned:
        axes.legend()
    figure.tight_layout()
    with atomic.replacing(path) as temporary:
        figure.savefig(temporary)
    return path


def _plot_importances(importances: dict[str, float], metric: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    names = list(importances)[::-1]
    figure = Figure(figsize=(7, 1.2 + 0.45 * len(names)), dpi=100)
    axes = figure.subplots()
    axes.barh(names, [importances[n] for n in names])
    axes.set_xlabel(f"importance for {metric}")
    axes.set_title("Parameter importances")
    figure.tight_layout()
    with atomic.replacing(path) as temporary:
        figure.savefig(temporary)
    return path


def resume_settings(directory: Path) -> dict[str, Any]:
    """The settings of the tune in `directory` (its tune.json), for `--resume DIR`."""
    path = Path(directory) / TUNE_FILE
    if not path.is_file():
        raise SpecErrors.single(
            f"{directory} holds no tune ({TUNE_FILE} is missing)",
            hint="--resume takes the folder a tune wrote",
        )
    # Checked whole before any of it is used: a damaged file is an error at its place in it.
    hint = f"this tune cannot be resumed: start a new one, or mend {path}"
    return rd.read_record(path, TUNE_FIELDS, hint=hint)


def render(result: TuneResult) -> str:
    """A short text report of a tune."""
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items() if n)
    lines = [f"study '{result.study_name}' in {result.storage}: {counts or 'no trials'}"]
    if result.best_number is not None:
        lines.append(f"best trial {result.best_number}: {result.metric} = {result.best_value:.6g}")
        lines += [f"  {path} = {json.dumps(value)}" for path, value in result.best_params.items()]
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"wrote {path}" for path in result.files]
    return "\n".join(lines)
