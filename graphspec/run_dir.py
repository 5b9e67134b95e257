"""The run directory of a training: where it goes, what it holds, and that it is never half-made.

A run is written into a hidden folder beside its final place (`.NAME.partial`) and renamed there
only when it has finished, so no half-made run ever stands where a finished one would. A run
that fails is removed; one that is killed, or stopped by bad data found mid-stream (kept with
`RunDirectory.keep`), stays, with a backup of its last completed epoch, for
`graphspec train --resume`. It holds:

    spec.yaml        the resolved spec (params and overrides applied, the seed used); nested
                     specs beside it in spec/, so `graphspec train spec.yaml` reruns it
    overrides.json   the overrides and data given on the command line, the grants it had, and
                     the spec's git revision when it was in a repository (for `graphspec card`)
    fingerprint.json the architecture and training fingerprints (`graphspec fingerprint`)
    model.keras      the final model
    history.csv/.json  loss and metrics per epoch
    skipped.jsonl    the bad examples `--skip-bad N` skipped, one a line (`graphspec.data.skips`)
    ...              whatever the callbacks write (checkpoints, logs/, activations/)

No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from graphspec import atomic
from graphspec.errors import Location, SpecErrors
from graphspec.policy import is_within

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

SPEC_FILE, OVERRIDES_FILE, MODEL_FILE = "spec.yaml", "overrides.json", "model.keras"
HISTORY_CSV, HISTORY_JSON = "history.csv", "history.json"


def final_path(
    spec_name: str, out: Path | None = None, runs_root: Path = Path("runs"), now: datetime | None = None
) -> Path:
    """`out` if given (it must not hold files), else `runs_root/<spec name>/<timestamp>/`,
    with `-2`, `-3`, ... added when two runs start in the same second."""
    if out is not None:
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SpecErrors.single(
                f"run directory {out} already exists and is not empty",
                hint="name a new folder with --out, or leave --out out",
            )
        return out
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = checked_base(runs_root, spec_name)
    path, count = base / stamp, 1
    while path.exists():
        count += 1
        path = base / f"{stamp}-{count}"
    return path


def checked_base(runs_root: Path, name: str) -> Path:
    """`runs_root/name`, where runs of the spec `name` go when no --out is given, once no link
    on the way leads elsewhere: `SpecErrors` for a link among a relative `runs_root`'s parts
    that leads out of the working folder, or a `name` folder that is a link leading out of
    `runs_root`. A repository can ship such links (`runs/NAME -> /somewhere`); a run is written
    only where the command line says. A runs folder given as the link's target is taken."""
    root = Path(runs_root)
    if not root.is_absolute():
        here = Path.cwd().resolve()
        current = Path()
        for part in root.parts:
            current = current / part
            if current.is_symlink() and not is_within(current.resolve(), here):
                raise _link_refused(current, here, f"give --runs-dir {current.resolve()} if that is meant")
    base = root / name
    if base.is_symlink() and not is_within(base.resolve(), root.resolve()):
        raise _link_refused(base, root, "remove the link, or name the run's folder with --out")
    return base


def _link_refused(link: Path, folder: Path, hint: str) -> SpecErrors:
    return SpecErrors.single(
        f"{link} is a link to {link.resolve()}, outside {folder}: a run is not written through it",
        hint=hint,
    )


def partial_path(final: Path) -> Path:
    """Where a run is written until it finishes: a hidden folder beside its final place."""
    return final.parent / f".{final.name}.partial"


def interrupted_run(run: Path) -> Path:
    """The final place of the interrupted run at `run` (its final path or its .partial folder)."""
    run = Path(run)
    final = (
        run.parent / run.name[1 : -len(".partial")]
        if (run.name.startswith(".") and run.name.endswith(".partial"))
        else run
    )
    if not partial_path(final).is_dir():
        if final.is_dir():
            raise SpecErrors.single(f"run {final} finished: there is nothing to resume")
        raise SpecErrors.single(
            f"no interrupted run at {run}",
            hint="--resume takes the run directory `graphspec train` printed when it started",
        )
    return final


class RunDirectory:
    """A run directory being written: `path` is the hidden folder to write into; `commit()`
    moves it to `final`. Leaving the `with` block on an error removes it unless `keep()` was
    called; a kill (or Ctrl-C) leaves it, so that `graphspec train --resume` can continue the
    run from its last epoch."""

    def __init__(self, final: Path, resume: bool = False):
        self.final = Path(final)
        self.path = partial_path(self.final)
        if not resume:
            if self.path.exists():
                raise SpecErrors.single(
                    f"an interrupted run is in {self.path}",
                    hint=f"resume it with --resume {self.final}, or remove it",
                )
            reason = atomic.unwritable(self.path)
            try:
                if reason is None:
                    self.final.parent.mkdir(parents=True, exist_ok=True)
                    self.path.mkdir()
            except OSError as exc:
                reason = exc.strerror or str(exc)
            if reason is not None:
                raise SpecErrors.single(f"cannot create run directory {self.final}: {reason}")
        self.committed = self.kept = False

    def keep(self) -> None:
        """Leave the unfinished run in place when the `with` block ends on an error: it can be
        resumed (bad data found mid-stream, which can be fixed)."""
        self.kept = True

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, kind: type | None, *exc_info: Any) -> None:
        if (
            not self.committed
            and not self.kept
            and kind is not None
            and not issubclass(kind, KeyboardInterrupt)
        ):
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        """Move the finished run to its final place and return that place."""
        if self.final.is_dir() and not any(self.final.iterdir()):
            self.final.rmdir()  # an empty --out folder made beforehand
        os.replace(self.path, self.final)
        self.committed = True
        return self.final


def resolved_documents(loaded: LoadedSpec, name: str = SPEC_FILE) -> dict[str, dict]:
    """The resolved spec and its nested specs, as {relative file name: data}, each nested spec
    written with its params applied and referred to by its new relative path."""
    data = loaded.resolved()
    documents = {name: data}
    folder = Path(name).stem
    for node, nested in loaded.nested.items():
        relative = f"{folder}/{node}.yaml"
        layer = data["layers"][node]
        layer["spec"] = relative
        layer.pop("params", None)
        for inner_name, inner in resolved_documents(nested, f"{node}.yaml").items():
            documents[str(Path(name).parent / folder / inner_name)] = inner
    return documents


def finished_files(run: Path, hint: str) -> tuple[Path, Path]:
    """The model and spec files of the finished run `run`; an error naming the one it lacks."""
    model_path, spec_path = run / MODEL_FILE, run / SPEC_FILE
    for needed in (model_path, spec_path):
        if not needed.is_file():
            raise SpecErrors.single(f"{run} is not a run directory: it has no {needed.name}", hint=hint)
    return model_path, spec_path


def write_spec(directory: Path, loaded: LoadedSpec, seed: int | None) -> None:
    """Write the resolved spec (with the seed the run used) and its nested specs beside it, so
    that it validates and builds on its own, under its folder as the policy's root."""
    origin = loaded.path or "text"
    header = f"# Resolved by graphspec from {origin}: params, overrides and seed applied.\n"
    for relative, data in resolved_documents(loaded).items():
        if relative == SPEC_FILE and seed is not None:
            data.setdefault("train", {})["seed"] = seed
        write_atomically(directory / relative, spec_text(data, header))


def spec_text(data: dict, header: str) -> str:
    """A resolved spec document as YAML, under a comment saying where it came from."""
    return header + yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
    )


def write_json(path: Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2, default=str) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never a truncated file."""
    atomic.write_text(path, text)


def read_json(path: Path, hint: str | None = None) -> Any:
    """The JSON in `path`; `SpecErrors` naming the file when it is missing or unreadable, and at
    its line and column when it is not JSON."""
    return _parse_json(path, hint)[1]


def _parse_json(path: Path, hint: str | None) -> tuple[str, Any]:
    text = _read_text(path, hint)
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecErrors.single(
            f"{Path(path).name} is damaged: invalid JSON: {exc.msg}",
            Location(str(path), exc.lineno, exc.colno),
            hint=hint,
            sources={str(path): text},
        ) from None


def read_record(path: Path, fields: dict[str, Any], hint: str | None = None) -> dict[str, Any]:
    """The JSON object in `path`, checked to hold `fields` (see `record_problem`); `SpecErrors`
    at the place it is broken, or at the key that is wrong."""
    text, data = _parse_json(path, hint)
    problem = record_problem(data, fields)
    if problem is not None:
        key, message = problem
        at = text.find(json.dumps(key)) if key else -1
        line = text.count("\n", 0, at) + 1 if at >= 0 else 1
        col = at - text.rfind("\n", 0, at) if at >= 0 else 1
        raise SpecErrors.single(
            f"{Path(path).name} is damaged: {message}",
            Location(str(path), line, col, len(json.dumps(key)) if at >= 0 else 1),
            hint=hint,
            sources={str(path): text},
        )
    return data


_KINDS = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "strings": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)),
}
# What a run records of its data (`DataSource.describe()`), in overrides.json and a tune's tune.json.
SOURCE_FIELDS = {
    "synthetic": "bool?",
    "kind": "str?",
    "data": "str?",
    "val_data": "str?",
    "test_data": "str?",
    "skip_bad": "int?",
}
_STARTED_FIELDS = {"overrides": "strings", **SOURCE_FIELDS}


def record_problem(data: Any, fields: dict[str, Any], prefix: str = "") -> tuple[str, str] | None:
    """The first way `data` is not an object holding `fields` ({key: kind, or {nested fields}};
    kinds are str, int, bool and strings, and one ending in '?' may be null or missing), as
    (the key, what is wrong); None when it holds them."""
    if not isinstance(data, dict):
        where = f"'{prefix.rstrip('.')}'" if prefix else "it"
        return prefix.rstrip(".").rpartition(".")[2], f"{where} should be a JSON object"
    for key, kind in fields.items():
        name = prefix + key
        if isinstance(kind, dict):
            found = (
                record_problem(data[key], kind, name + ".") if key in data else (key, f"'{name}' is missing")
            )
            if found is not None:
                return found
            continue
        what, fits = _KINDS[kind.rstrip("?")]
        value = data.get(key)
        if value is None and kind.endswith("?"):
            continue
        if key not in data:
            return key, f"'{name}' is missing"
        if not fits(value):
            return key, f"'{name}' should be {what}"
    return None


def started_with(final: Path) -> dict[str, Any]:
    """What the interrupted run at `final` was started with: its overrides.json (the overrides
    and data), once it and the run's spec.yaml are known to be there and whole. `SpecErrors`
    naming the file, and the place in it, that is missing or damaged."""
    partial = partial_path(final)
    hint = f"this run cannot be resumed: train it again, and remove {partial}"
    if not (partial / SPEC_FILE).is_file():
        raise SpecErrors.single(f"{partial / SPEC_FILE} is missing", hint=hint)
    started = read_record(partial / OVERRIDES_FILE, _STARTED_FIELDS, hint)
    if not started.get("synthetic") and not started.get("data"):
        raise SpecErrors.single(
            f"{OVERRIDES_FILE} is damaged: it names neither synthetic data nor a data file",
            Location(str(partial / OVERRIDES_FILE), 1, 1),
            hint=hint,
        )
    return started


def _read_text(path: Path, hint: str | None) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecErrors.single(f"{path} is missing", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise SpecErrors.single(f"cannot read {path}: {reason or exc}", hint=hint) from None


def read_history(directory: Path) -> dict[str, list[float]]:
    """The per-epoch history a run has written so far ({} when none)."""
    path = directory / HISTORY_JSON
    if not path.exists():
        return {}
    history = read_json(path, hint="this run cannot be resumed: train it again")
    if not isinstance(history, dict):
        raise SpecErrors.single(
            f"{HISTORY_JSON} is damaged: it should be a JSON object", Location(str(path), 1, 1)
        )
    history.pop("epoch", None)
    return history


def write_history(directory: Path, history: dict[str, list[float]]) -> None:
    """history.json ({metric: [value per epoch]}) and history.csv (a row per epoch)."""
    epochs = len(next(iter(history.values()), []))
    write_json(directory / HISTORY_JSON, {"epoch": list(range(epochs)), **history})
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["epoch", *history])
    for epoch in range(epochs):
        writer.writerow([epoch, *(values[epoch] for values in history.values())])
    write_atomically(directory / HISTORY_CSV, rows.getvalue())
