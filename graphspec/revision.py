"""Specs named by a file path, by a git revision or by a model file: `specs/a.yaml`,
`HEAD~1:specs/a.yaml`, `runs/a/model.keras`.

A name that is an existing file, or that has no ':', is a file. Otherwise it is `REV:PATH` as
`git show` reads it (PATH from the repository's root, or from the current folder when it
starts with `./` or `../`), and messages about the spec name it `REV:PATH`. Its nested specs
and included blocks are read from the same revision, and named the same way.
A `.keras` file written by graphspec stands for the spec it was built from, which it carries
(`graphspec.archive`): its files are read from the archive and named `MODEL.keras:NAME`.
No TensorFlow here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec import budget
from graphspec.errors import Location, SpecErrors
from graphspec.spec.files import Files
from graphspec.spec.source import MAX_BYTES

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

_GIT_TIMEOUT_S = 30


def is_revision(name: str) -> bool:
    """Whether `name` is `REV:PATH` rather than a file."""
    return ":" in name and not Path(name).exists()


def load_spec(
    name: str, overrides: list[str] | dict[str, Any] | None = None, root: Path | None = None
) -> LoadedSpec:
    """Load the spec a file path or a `REV:PATH` names, reading nested specs and includes only
    under `root` (default: its folder), or the spec a graphspec `.keras` file carries, with the
    overrides it was built with and then `overrides`. Raises `SpecErrors` when it cannot (a
    `.keras` file not written by graphspec carries no spec)."""
    from graphspec.spec.load import load, load_text

    if not is_revision(name) and name.endswith(".keras"):
        from graphspec.archive import load_embedded

        if isinstance(overrides, dict):
            overrides = [f"{key}={value}" for key, value in overrides.items()]
        return load_embedded(Path(name), overrides)
    if not is_revision(name):
        return load(Path(name), overrides, root=root)
    with budget.ensure():  # the blob and what it includes share one budget
        text, base, root = read_revision(name)
        files = RevisionFiles(name.partition(":")[0], root)
        return load_text(text, name, overrides, base=base, files=files, root=root)


class RevisionFiles(Files):
    """The files of one git revision, found by their working-tree paths under `root` (the
    repository's top level) and named `REV:PATH` with PATH from the top level."""

    def __init__(self, revision: str, root: Path):
        self.revision, self.root = revision, root.resolve()

    def _object(self, path: Path) -> str | None:
        try:
            relative = path.resolve().relative_to(self.root)
        except ValueError:
            return None  # outside the repository: the revision has no such file
        return f"{self.revision}:{relative.as_posix()}"

    def _git(self, *args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(
                ["git", "-C", str(self.root), *args], capture_output=True, timeout=_GIT_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    def is_file(self, path: Path) -> bool:
        name = self._object(path)
        result = self._git("cat-file", "-t", name) if name else None
        return result is not None and result.returncode == 0 and result.stdout.strip() == b"blob"

    def read(self, path: Path) -> str:
        name = self._object(path)
        if not name or not self.is_file(path):
            raise FileNotFoundError(f"{name or path} is not in git")
        return read_blob(name, ["-C", str(self.root)]).decode("utf-8")

    def name(self, path: Path, shown: str) -> str:
        return self._object(path) or shown

    def specs_in(self, folder: Path) -> list[str]:
        try:
            relative = folder.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return []
        where = [] if relative == "." else ["--", relative + "/"]
        result = self._git("ls-tree", "--name-only", self.revision, *where)
        if result is None or result.returncode != 0:
            return []
        names = result.stdout.decode("utf-8", "replace").splitlines()
        return sorted(Path(n).name for n in names if n.endswith((".yaml", ".yml")))


def read_revision(name: str) -> tuple[str, Path, Path]:
    """The text of `REV:PATH` in git, the working-tree path it stands for, and the repository's
    top level.

    Raises `SpecErrors` with git's own reason when git, the revision or the path is missing.
    """
    revision, _, path = name.partition(":")
    # A revision starting with '-' would reach git as an option (`--output=...` writes a file).
    if not revision or not path or revision.startswith("-"):
        raise SpecErrors.single(
            f"'{name}' is neither a file nor REV:PATH",
            hint="name a spec file, or a git revision and a path: HEAD~1:specs/a.yaml",
        )
    shown = read_blob(name, [])
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecErrors.single(f"{name} is not UTF-8 text") from None
    root = Path(_git(["rev-parse", "--show-toplevel"], name).decode().strip())
    base = Path.cwd() / path if path.startswith(("./", "../")) else root / path
    return text, base, root


def read_blob(name: str, where: list[str]) -> bytes:
    """The bytes of the git blob `REV:PATH`, its size asked of git (`cat-file -s`) and charged
    to the command's `bytes` budget before any of it is read, and read bounded: a 1 GiB blob
    is refused from its size, and one that turns out longer than git said is cut off unread.
    `where` are git's options that come before the command (`-C ROOT`)."""
    kind = _git([*where, "cat-file", "-t", name], name).decode("ascii", "replace").strip()
    if kind != "blob":
        raise SpecErrors.single(f"cannot read '{name}' from git: it is a {kind}, not a file")
    size = int(_git([*where, "cat-file", "-s", name], name).strip() or 0)
    at = Location(name, 1, 1)
    if size > MAX_BYTES:
        raise SpecErrors.single(f"file is {size:,} bytes; a spec may have at most {MAX_BYTES:,}", at)
    budget.current().charge("bytes", size, at, f"this file's {size:,} bytes")
    try:
        process = subprocess.Popen(
            ["git", *where, "cat-file", "blob", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:
        raise SpecErrors.single(f"cannot read '{name}': git is not installed") from None
    try:
        data = process.stdout.read(size + 1)
    finally:
        process.kill()
        process.stdout.close()
        process.wait()
    if len(data) != size:
        raise SpecErrors.single(f"cannot read '{name}' from git: got {len(data):,} bytes of {size:,}", at)
    return data


def _git(args: list[str], name: str) -> bytes:
    try:
        result = subprocess.run(["git", *args], capture_output=True, timeout=_GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise SpecErrors.single(f"cannot read '{name}': git is not installed") from None
    except subprocess.TimeoutExpired:
        raise SpecErrors.single(f"cannot read '{name}': git did not answer in {_GIT_TIMEOUT_S} s") from None
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[0] if lines else f"git exited with status {result.returncode}"
        reason = reason.removeprefix("fatal: ").removeprefix("error: ")
        raise SpecErrors.single(f"cannot read '{name}' from git: {reason}")
    return result.stdout


def spec_revision(path: Path | None) -> dict[str, Any] | None:
    """Where the spec file at `path` stands in git, for a run's record and its model card:
    `{"commit": SHA, "path": PATH in the repository, "modified": bool}` (modified: the file
    differs from that commit, or is not in it). None when it is in no git repository, or git is
    missing or does not answer: the revision is then unknown, which is no error."""
    if path is None:
        return None
    folder, name = str(Path(path).resolve().parent), Path(path).name

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", folder, *args], capture_output=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.decode("utf-8", "replace").strip() if result.returncode == 0 else None

    commit = git("rev-parse", "--verify", "--quiet", "HEAD")
    prefix = git("rev-parse", "--show-prefix")
    if not commit or prefix is None:
        return None
    # `--` ends git's options, so a file named like one is only a file.
    tracked = git("ls-files", "--error-unmatch", "--", name) is not None
    status = git("status", "--porcelain", "--", name)
    return {"commit": commit, "path": prefix + name, "modified": not tracked or bool(status)}
