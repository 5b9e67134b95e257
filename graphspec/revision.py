"""Specs named by a file path or by a git revision: `specs/a.yaml`, `HEAD~1:specs/a.yaml`.

A name that is an existing file, or that has no ':', is a file. Otherwise it is `REV:PATH` as
`git show` reads it (PATH from the repository's root, or from the current folder when it
starts with `./` or `../`), and messages about the spec name it `REV:PATH`. Nested specs and
included blocks of a revision are read from the working tree, beside the file PATH names.
No TensorFlow here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec.errors import SpecErrors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

_GIT_TIMEOUT_S = 30


def is_revision(name: str) -> bool:
    """Whether `name` is `REV:PATH` rather than a file."""
    return ":" in name and not Path(name).exists()


def load_spec(name: str, overrides: list[str] | dict[str, Any] | None = None) -> LoadedSpec:
    """Load the spec a file path or a `REV:PATH` names. Raises `SpecErrors` when it cannot."""
    from graphspec.spec.load import load, load_text

    if not is_revision(name):
        return load(Path(name), overrides)
    text, base = read_revision(name)
    return load_text(text, name, overrides, base=base)


def read_revision(name: str) -> tuple[str, Path]:
    """The text of `REV:PATH` in git, and the working-tree path it stands for.

    Raises `SpecErrors` with git's own reason when git, the revision or the path is missing.
    """
    revision, _, path = name.partition(":")
    if not revision or not path:
        raise SpecErrors.single(
            f"'{name}' is neither a file nor REV:PATH",
            hint="name a spec file, or a git revision and a path: HEAD~1:specs/a.yaml",
        )
    shown = _git(["show", name], name)
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecErrors.single(f"{name} is not UTF-8 text") from None
    if path.startswith(("./", "../")):
        base = Path.cwd() / path
    else:
        base = Path(_git(["rev-parse", "--show-toplevel"], name).decode().strip()) / path
    return text, base


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
