"""The spec inside a model file: what a `.keras` written by graphspec carries, and how it is read.

A `.keras` file is a zip archive. Keras writes `config.json`, `metadata.json` and
`model.weights.h5` (and `assets/` for layers that have some); graphspec adds, under `graphspec/`:

    graphspec/manifest.json     what the rest is, below
    graphspec/files/NAME        every spec file the model was built from, byte for byte: the
                                top spec, its nested specs (`spec:`) and included block files,
                                NAME relative to the folder that holds them all
    graphspec/resolved/NAME     the resolved spec (params, overrides and blocks applied) and its
                                nested specs, as a training run's folder holds them

    manifest.json = {
      "format": "graphspec-archive/1",
      "graphspec": "0.2.0",                    the version that wrote it
      "spec": "specs/a.yaml",                  the top spec, a NAME of "files"
      "files": {"specs/a.yaml": {"bytes": 412, "sha256": "<hex>"}, ...},
      "exact": true,                           false: "files" are the resolved spec, the
                                               sources could not be recovered
      "overrides": ["width=24"],               the --set values the model was built with
      "resolved": ["spec.yaml", "spec/enc.yaml"],
      "fingerprint": {"scheme": "...", "architecture": "sha256:...", "training": "sha256:..."}
    }

Loading the files with the overrides, through the spec loader with its limits, gives the spec
the model was built from: `graphspec fingerprint model.keras` and `graphspec diff model.keras
spec.yaml` use it, and `graphspec export model.keras` writes the files back as they were.

`keras.models.load_model` reads `config.json` and the weights only: it ignores these members.
(With more than three members it extracts the whole archive to a temporary folder to look for
assets, and finds none under `graphspec/`.)

An archive is untrusted input: every name is checked to be a plain relative path (no `..`, no
absolute path, no link), every size is checked before the member is read and read with a bound,
the manifest is checked, and the files must match the manifest's sizes and hashes. Nothing here
imports TensorFlow or Keras: this is zipfile, json and the spec loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec import atomic, budget
from graphspec.errors import Location, SpecErrors
from graphspec.policy import SPEC_SUFFIXES, is_within, resolved
from graphspec.spec.files import Files
from graphspec.spec.source import MAX_BYTES

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

FORMAT = "graphspec-archive/1"
PREFIX = "graphspec/"
MANIFEST = PREFIX + "manifest.json"
FILES = PREFIX + "files/"
RESOLVED = PREFIX + "resolved/"

MAX_FILES = 1_000  # spec files in one archive (a spec nests at most 16 deep; this is many)
MAX_MANIFEST_BYTES = 1_000_000
MAX_TOTAL_BYTES = 64_000_000  # all of graphspec's members together, as declared
_MAX_NAME = 1_000
_TOP = "spec.yaml"  # the top spec's name when it was given as text, not as a file


@dataclass
class Embedded:
    """The spec files a graphspec `.keras` file carries, checked against its manifest."""

    path: Path  # the .keras file
    spec: str  # the top spec's name among `files`
    files: dict[str, bytes]  # name -> content, byte for byte
    overrides: list[str] = field(default_factory=list)
    exact: bool = True
    fingerprint: dict[str, str] = field(default_factory=dict)
    version: str = ""

    def load(self, overrides: list[str] | None = None) -> LoadedSpec:
        """The spec the model was built from: its files with the overrides it was built with,
        then `overrides`, through the spec loader (every limit of a spec file applies). Messages
        name each file `MODEL.keras:NAME`."""
        from graphspec.spec.load import load_text

        files = ArchiveFiles(self.path, self.files)
        top = files.root / self.spec
        name = files.name(top, self.spec)
        try:
            text = files.read(top)
        except UnicodeDecodeError:
            raise SpecErrors.single(f"cannot read {name}: it is not UTF-8 text") from None
        return load_text(
            text, name, self.overrides + list(overrides or []), base=top, files=files, root=files.root
        )

    def nested(self) -> dict[str, bytes]:
        """The files other than the top spec, by their names relative to its folder (a name
        may start with `../` when the spec reads files above its own folder)."""
        folder = posixpath.dirname(self.spec) or "."
        return {
            posixpath.relpath(name, folder): data for name, data in self.files.items() if name != self.spec
        }


class ArchiveFiles(Files):
    """The spec files of an archive, found by paths under the archive's own path as if it
    were their folder (`m.keras/specs/a.yaml`), and named `m.keras:specs/a.yaml`."""

    def __init__(self, archive: Path, files: dict[str, bytes]):
        self.archive, self.files = Path(archive), files
        self.root = resolved(self.archive)

    def _member(self, path: Path) -> str | None:
        try:
            return resolved(path).relative_to(self.root).as_posix()
        except ValueError:
            return None  # outside the archive: it has no such file

    def is_file(self, path: Path) -> bool:
        return self._member(path) in self.files

    def read(self, path: Path) -> str:
        member = self._member(path)
        if member not in self.files:
            raise FileNotFoundError(f"{self.archive} has no file {member or path}")
        data = self.files[member]
        # Charged as a file on disk is: a model file's specs count against the same budget.
        budget.current().charge(
            "bytes", len(data), Location(self.name(path, member), 1, 1), f"this file's {len(data):,} bytes"
        )
        # As `Files.read` does: universal newlines, so that positions count "\r\n" as one.
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def name(self, path: Path, shown: str) -> str:
        member = self._member(path)
        return f"{self.archive}:{member}" if member else shown

    def specs_in(self, folder: Path) -> list[str]:
        member = self._member(folder)
        if member is None:
            return []
        prefix = "" if member == "." else member + "/"
        return sorted(
            name[len(prefix) :]
            for name in self.files
            if name.startswith(prefix) and "/" not in name[len(prefix) :]
        )


# ------------------------------------------------------------------------------- writing


def members(loaded: LoadedSpec) -> dict[str, bytes]:
    """The archive members that record `loaded` in a `.keras` file (see the module's doc).

    The files are the ones the spec was read from, byte for byte when they are unchanged on
    disk since, else the text the loader read (line endings made "\\n"). They are checked by
    loading them back as `fingerprint model.keras` will: when that does not give the same
    fingerprints (a spec read from git, a file the loader's record misses), the resolved spec
    is recorded instead, with `"exact": false`.
    """
    from graphspec import __version__
    from graphspec import run_dir as rd
    from graphspec.fingerprint import SCHEME, fingerprint

    expected = fingerprint(loaded)
    top, files = _source_files(loaded)
    overrides = list(loaded.overrides)
    from graphspec.policy import granted

    with granted(loaded.grants):  # loaded back as the command loaded it, with its grants
        exact = _within_limits(files) and _reproduces(top, files, overrides, expected)
    resolved_docs = {
        name: rd.spec_text(
            _expanded(data), "# Resolved by graphspec: params, overrides and blocks applied.\n"
        ).encode()
        for name, data in rd.resolved_documents(loaded).items()
    }
    if not exact:
        top, files, overrides = rd.SPEC_FILE, dict(resolved_docs), []
        if not _within_limits(files):
            return {}  # it could not be read back: the file carries no spec, as Keras writes it
    # The resolved spec is for people and other tools: left out, whole, where it would pass the
    # limits a reader holds the archive to.
    if not _within_limits(resolved_docs, sum(len(data) for data in files.values())):
        resolved_docs = {}
    manifest = {
        "format": FORMAT,
        "graphspec": __version__,
        "spec": top,
        "files": {name: {"bytes": len(data), "sha256": _sha256(data)} for name, data in files.items()},
        "exact": exact,
        "overrides": overrides,
        "resolved": list(resolved_docs),
        "fingerprint": {"scheme": SCHEME, **expected.as_dict()},
    }
    written = {MANIFEST: (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")}
    written.update({FILES + name: data for name, data in files.items()})
    written.update({RESOLVED + name: data for name, data in resolved_docs.items()})
    return written


def append(path: Path, written: dict[str, bytes]) -> None:
    """Add `written` (from `members`) to the `.keras` archive at `path`, which Keras has just
    written; `SpecErrors` when it cannot be."""
    try:
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            if any(name.startswith(PREFIX) for name in archive.namelist()):
                raise SpecErrors.single(f"{path} already holds a spec")
            for name, data in written.items():
                info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, data)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SpecErrors.single(f"cannot record the spec in {path}: {exc}") from None


def _expanded(document: dict) -> dict:
    """A resolved document without its block definitions and includes: its layers are expanded
    already, and the included files are not beside it."""
    return {key: value for key, value in document.items() if key not in ("include", "blocks")}


def _within_limits(files: dict[str, bytes], beside: int = 0) -> bool:
    """Whether `read` would take `files` (with `beside` bytes of other members): safe names,
    sizes and a count within its limits."""
    total = beside + sum(len(data) for data in files.values())
    return (
        len(files) <= MAX_FILES
        and total <= MAX_TOTAL_BYTES - MAX_MANIFEST_BYTES
        and all(unsafe_name(name) is None and len(data) <= MAX_BYTES for name, data in files.items())
    )


def _source_files(loaded: LoadedSpec) -> tuple[str, dict[str, bytes]]:
    """The top spec's name and every file the load read, by name relative to the folder that
    holds them all."""
    from graphspec.spec.params import OVERRIDE_FILE

    texts: dict[Path, str] = {}
    top = resolved(loaded.path) if loaded.path is not None else None
    seen: set[int] = set()
    stack = [loaded]
    while stack:
        spec = stack.pop()
        if id(spec) in seen:
            continue
        seen.add(id(spec))
        if spec.path is not None:
            texts.setdefault(resolved(spec.path), spec.source.text)
        # The loader keeps the text of every file it read to quote it in messages: the spec's
        # own and each included file's, by the name messages give it (a path).
        for name, text in spec.diagnostics.sources.items():
            if name not in (spec.source.file, OVERRIDE_FILE) and name.endswith(SPEC_SUFFIXES):
                texts.setdefault(resolved(Path(name)), text)
        stack.extend(spec.nested.values())
    if top is None:
        base = resolved(Path.cwd())
        top = base / next(n for n in (_TOP, "spec-0.yaml", "spec-1.yaml") if base / n not in texts)
        texts[top] = loaded.source.text
    folder = Path(os.path.commonpath([str(p.parent) for p in texts]))
    files = {path.relative_to(folder).as_posix(): _original(path, text) for path, text in texts.items()}
    return top.relative_to(folder).as_posix(), files


def _original(path: Path, text: str) -> bytes:
    """The file's bytes when they are still the text the loader read, else that text."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        decoded = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return text.encode("utf-8")
    if decoded == text or decoded.replace("\r\n", "\n").replace("\r", "\n") == text:
        return data
    return text.encode("utf-8")


def _reproduces(top: str, files: dict[str, bytes], overrides: list[str], expected: Any) -> bool:
    """Whether loading `files` back as an archive gives the fingerprints `expected`."""
    from graphspec.fingerprint import fingerprint

    embedded = Embedded(Path(os.devnull).parent / "graphspec-check.keras", top, files, overrides)
    try:
        return fingerprint(embedded.load()) == expected
    except SpecErrors:
        return False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------- reading


def read(path: Path) -> Embedded | None:
    """The spec files `path` carries, checked; None for a Keras archive that carries none
    (a model saved by Keras itself). `SpecErrors` when `path` is not a zip archive, or its
    graphspec members are damaged or unsafe: a name that is not a plain relative path, a
    link, a size over the limits (checked before anything is read), a manifest that does
    not describe the files."""
    path = Path(path)
    if not path.is_file():
        raise SpecErrors.single(f"no such file: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(path, archive)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise SpecErrors.single(f"{path} is not a Keras model file (.keras): {exc}") from None


def load_embedded(path: Path, overrides: list[str] | None = None) -> LoadedSpec:
    """The spec the model in `path` was built from (see `Embedded.load`); `SpecErrors` when
    `path` carries none, saying how to get one."""
    embedded = read(path)
    if embedded is None:
        raise SpecErrors.single(
            f"{path} was not written by graphspec: it holds a Keras model but not the spec it was built from",
            hint=f"reconstruct a spec from the model with: graphspec export {path} -o spec.yaml",
        )
    return embedded.load(overrides)


def _read(path: Path, archive: zipfile.ZipFile) -> Embedded | None:
    ours = [info for info in archive.infolist() if info.filename.startswith(PREFIX)]
    if not ours:
        return None
    names = [info.filename for info in ours]
    if MANIFEST not in names:
        raise _damaged(path, f"it has members under {PREFIX} but no {MANIFEST}")
    if len(ours) > 2 * MAX_FILES + 1:
        raise _damaged(path, f"it has {len(ours):,} members under {PREFIX}; at most {2 * MAX_FILES + 1:,}")
    if len(set(names)) != len(names):
        raise _damaged(path, f"a member under {PREFIX} appears twice")
    total = 0
    for info in ours:
        _check_member(path, info)
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise _damaged(
            path, f"its members under {PREFIX} declare {total:,} bytes; at most {MAX_TOTAL_BYTES:,}"
        )
    by_name = {info.filename: info for info in ours}
    _charge(path, by_name[MANIFEST])
    manifest = _manifest(path, member_bytes(path, archive, by_name[MANIFEST], MAX_MANIFEST_BYTES))
    files = {}
    for name, record in manifest["files"].items():
        info = by_name.get(FILES + name)
        if info is None:
            raise _damaged(path, f"the manifest lists {name}, which it does not hold")
        if info.file_size != record["bytes"]:
            raise _damaged(
                path, f"{name} holds {info.file_size:,} bytes; the manifest says {record['bytes']:,}"
            )
        _charge(path, info)
        data = member_bytes(path, archive, info, MAX_BYTES)
        if _sha256(data) != record["sha256"]:
            raise _damaged(path, f"{name} is not the file the manifest describes (its hash differs)")
        files[name] = data
    extra = sorted(n[len(FILES) :] for n in by_name if n.startswith(FILES) and n[len(FILES) :] not in files)
    if extra:
        raise _damaged(path, f"it holds {extra[0]}, which the manifest does not list")
    return Embedded(
        path,
        manifest["spec"],
        files,
        manifest["overrides"],
        manifest["exact"],
        manifest["fingerprint"],
        manifest["graphspec"],
    )


def _charge(path: Path, info: zipfile.ZipInfo) -> None:
    """Charge a member to the command's `model-bytes` as its header declares, before it is read
    (`export` writes the files back unparsed: this is what bounds what it reads; loading them
    charges their text to `bytes` besides)."""
    budget.current().charge(
        "model-bytes", info.file_size, None, f"{path}: {info.filename}'s {info.file_size:,} bytes"
    )


def _check_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a member that is not a plain file with a safe name and a bounded size."""
    name = info.filename
    if name == MANIFEST:
        limit = MAX_MANIFEST_BYTES
    elif name.startswith((FILES, RESOLVED)):
        limit = MAX_BYTES
        reason = unsafe_name(name[len(FILES) if name.startswith(FILES) else len(RESOLVED) :])
        if reason:
            raise _damaged(path, f"member '{name}' {reason}")
    else:
        raise _damaged(path, f"member '{name}' is not one graphspec writes")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer recorded no file type
    if info.is_dir() or kind not in (0, stat.S_IFREG):
        raise _damaged(path, f"member '{name}' is not a plain file (a folder or a link)")
    if info.flag_bits & 0x1:
        raise _damaged(path, f"member '{name}' is encrypted")
    if info.file_size > limit:
        raise _damaged(path, f"member '{name}' declares {info.file_size:,} bytes; at most {limit:,}")


def unsafe_name(name: str) -> str | None:
    """Why `name` is not a plain relative path of a spec file inside a folder; None if it is."""
    if not name or len(name) > _MAX_NAME:
        return "has no name or too long a one"
    if any(not c.isprintable() for c in name) or "\\" in name or ":" in name:
        return "has a control character, a backslash or a colon in its name"
    if name.startswith("/"):
        return "is an absolute path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "has an empty, '.' or '..' part in its path"
    if not name.endswith(SPEC_SUFFIXES):
        return "is not a spec (.yaml or .yml file)"
    return None


def member_bytes(
    path: Path,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limit: int,
    refuse: Callable[[Path, str], SpecErrors] | None = None,
) -> bytes:
    """A member's content, reading at most `limit` + 1 bytes whatever its header declares; a
    member that cannot be read or holds more is refused with `refuse(path, reason)`."""
    refuse = refuse or _damaged
    try:
        with archive.open(info) as handle:
            data = handle.read(limit + 1)
    except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise refuse(path, f"member '{info.filename}' cannot be read ({reason})") from None
    if len(data) > limit:
        raise refuse(path, f"member '{info.filename}' holds over {limit:,} bytes")
    return data


def _manifest(path: Path, data: bytes) -> dict[str, Any]:
    """The manifest, checked field by field."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"{MANIFEST} is not JSON ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict):
        raise _damaged(path, f"{MANIFEST} is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise SpecErrors.single(
            f"{path} records its spec as {str(manifest.get('format'))[:80]!r}; "
            f"this graphspec reads {FORMAT!r}",
            hint="read it with the graphspec that wrote it, or upgrade graphspec",
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files or len(files) > MAX_FILES:
        raise _damaged(path, f"{MANIFEST}: 'files' is not a mapping of 1 to {MAX_FILES:,} files")
    for name, record in files.items():
        reason = unsafe_name(name)
        if reason:
            raise _damaged(path, f"{MANIFEST}: file '{name[:200]}' {reason}")
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("bytes"), int)
            or not isinstance(record.get("sha256"), str)
        ):
            raise _damaged(path, f"{MANIFEST}: file '{name}' has no 'bytes' and 'sha256'")
    if not isinstance(manifest.get("spec"), str) or manifest["spec"] not in files:
        raise _damaged(path, f"{MANIFEST}: 'spec' is not one of its files")
    overrides = manifest.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise _damaged(path, f"{MANIFEST}: 'overrides' is not a list of strings")
    fingerprint = manifest.get("fingerprint", {})
    if not isinstance(fingerprint, dict) or not all(isinstance(v, str) for v in fingerprint.values()):
        raise _damaged(path, f"{MANIFEST}: 'fingerprint' is not a mapping of strings")
    manifest.setdefault("overrides", overrides)
    manifest.setdefault("fingerprint", fingerprint)
    manifest["exact"] = manifest.get("exact") is not False
    manifest["graphspec"] = str(manifest.get("graphspec", ""))
    return manifest


def _damaged(path: Path, reason: str) -> SpecErrors:
    return SpecErrors.single(
        f"{path}: the spec it records is damaged or unsafe: {reason}",
        hint="a model file is untrusted input; graphspec reads nothing from this one",
    )


# ------------------------------------------------------------------------------- export


@dataclass
class SourceExport:
    """What `graphspec export` gives for a `.keras` written by graphspec: the spec files it
    was built from, as they were (the interface of `graphspec.keras.export.Export`)."""

    embedded: Embedded

    @property
    def nested(self) -> dict[str, bytes]:
        """The files written beside the spec: its nested specs and included block files."""
        return self.embedded.nested()

    # Why export needs --output for this one (the files it writes beside the spec).
    files_reason = "was built from a spec that reads other files (nested specs, included blocks)"

    @property
    def notes(self) -> list[str]:
        """What the user should know about the files written."""
        notes = []
        if self.embedded.overrides:
            shown = " ".join(f"--set {o}" for o in self.embedded.overrides)
            notes.append(f"the model was built from this spec with {shown}")
        if not self.embedded.exact:
            notes.append("the sources of this model's spec were not recorded: this is its resolved spec")
        return notes

    def to_yaml(self) -> str:
        """The top spec's text, exactly as written."""
        data = self.embedded.files[self.embedded.spec]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecErrors.single(f"{self.embedded.path}:{self.embedded.spec} is not UTF-8 text") from None

    def write(self, path: Path) -> list[Path]:
        """Write the spec to `path` and the other files beside it under their names relative to
        it, byte for byte, each whole or not at all; the paths written. All are checked before
        any is written: a name that would lead out of `path`'s folder (by `..` or through a
        link) is refused."""
        path = Path(path)
        folder = resolved(path.parent)
        targets: dict[Path, bytes] = {}
        for name, data in self.nested.items():
            normal = posixpath.normpath(name)
            if normal.startswith("../") or normal == ".." or posixpath.isabs(normal):
                raise SpecErrors.single(
                    f"{self.embedded.path}: the spec reads '{name}', outside its own folder; export "
                    "writes files only beside the spec",
                    hint=f"unzip -p {self.embedded.path} {FILES}{{NAME}} gives each file",
                )
            target = path.parent / normal
            if not is_within(resolved(target.parent), folder):
                raise SpecErrors.single(
                    f"cannot write {target}: a link on its way leads out of {path.parent}"
                )
            if resolved(target) == resolved(path) or target in targets:
                raise SpecErrors.single(f"cannot write {target}: export would write it twice")
            targets[target] = data
        for target in (path, *targets):
            atomic.check_target(target)
        # The spec last: it never stands without the files it names.
        for target, data in targets.items():
            atomic.write_bytes(target, data)
        atomic.write_bytes(path, self.embedded.files[self.embedded.spec])
        return [path, *targets]


def exported(path: Path) -> SourceExport | None:
    """The spec files a graphspec `.keras` carries, for `graphspec export`; None for a file
    that is not a zip archive or carries none (export reconstructs a spec from the model).
    `SpecErrors` when what it carries is damaged or unsafe."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    embedded = read(path)
    return SourceExport(embedded) if embedded is not None else None
