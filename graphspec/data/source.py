"""Which kind of data a path names, and the files of a data folder, listed safely.

A path is one of: an `.npz` file; a table (`.csv`, `.tsv`, `.jsonl`, `.parquet`), a folder of
table shards or a glob of them; a folder of class subfolders of images or of text files (a folder of images
with no subfolders is unlabelled images, for `predict`). Folders are walked with links followed,
but a link back to a folder above it is refused (a symlink loop), and the number of files listed
is charged to the `data-files` limit. No TensorFlow here.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from graphspec import budget
from graphspec.errors import SpecErrors

NPZ, IMAGES, TEXT, TABLE = "npz", "images", "text", "table"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
_KINDS_HINT = (
    "give an .npz file, a table (.csv, .tsv, .jsonl, .parquet), a folder or glob of table shards, "
    "or a folder of class subfolders of images (.jpg, .png, .bmp, .gif) or text files (.txt)"
)


@dataclass
class Source:
    """What a data path holds. `files` are the example files (images, texts) or the table shards;
    `labels` the class folder of each example file (None: unlabelled), `classes` the folder names
    sorted."""

    path: str
    kind: str
    files: list[Path] = field(default_factory=list)
    labels: list[str] | None = None

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels)) if self.labels is not None else []


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def identify(path: str | os.PathLike) -> Source:
    """The kind and files of the data at `path`; `SpecErrors` naming the path when it is missing,
    empty, mixed or of no known kind."""
    text = str(path)
    candidate = Path(text)
    if not candidate.exists() and not candidate.is_symlink() and _has_glob(text):
        # No `**`: a recursive glob would walk links, loops included, before any limit applies.
        shards = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not shards:
            raise SpecErrors.single(f"data glob {text} matches no files")
        return _table_shards(text, shards)
    if not candidate.exists():
        raise SpecErrors.single(f"no such data file or folder: {text}")
    if candidate.is_file():
        suffix = _suffix(candidate)
        if suffix == ".npz":
            return Source(text, NPZ, [candidate])
        if suffix in TABLE_SUFFIXES:
            return Source(text, TABLE, [candidate])
        raise SpecErrors.single(f"cannot tell what data file {text} holds from its ending", hint=_KINDS_HINT)
    if not candidate.is_dir():
        raise SpecErrors.single(f"data path {text} is neither a file nor a folder")
    return _folder(candidate)


def _table_shards(text: str, shards: list[Path]) -> Source:
    endings = {_suffix(p) for p in shards}
    if not endings <= set(TABLE_SUFFIXES):
        odd = next(p for p in shards if _suffix(p) not in TABLE_SUFFIXES)
        raise SpecErrors.single(f"data {text} holds {odd}, which is not a table", hint=_KINDS_HINT)
    if len(endings) > 1:
        raise SpecErrors.single(
            f"data {text} mixes table kinds ({', '.join(sorted(endings))})",
            hint="shards of one table are all .csv, all .tsv, all .jsonl or all .parquet",
        )
    budget.current().check("data-files", len(shards), None, f"data {text}'s {len(shards):,} shards")
    return Source(text, TABLE, shards)


def _folder(root: Path) -> Source:
    entries = _entries(root, [])
    folders = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    if folders:
        labels: list[str] = []
        listed: list[Path] = []
        kinds = set()
        for folder in folders:
            found = [
                p
                for p in walk(folder, [os.path.realpath(root)])
                if _suffix(p) in IMAGE_SUFFIXES + TEXT_SUFFIXES
            ]
            if not found:
                raise SpecErrors.single(
                    f"class folder {folder} has no image or text files",
                    hint="every class subfolder holds examples (.jpg, .png, .bmp, .gif or .txt); "
                    "remove the empty one",
                )
            kinds |= {IMAGES if _suffix(p) in IMAGE_SUFFIXES else TEXT for p in found}
            listed += found
            labels += [folder.name] * len(found)
        if len(kinds) > 1:
            raise SpecErrors.single(
                f"data folder {root} mixes images and text files", hint="keep one kind of example per folder"
            )
        return Source(str(root), kinds.pop(), listed, labels)
    tables = [p for p in files if _suffix(p) in TABLE_SUFFIXES]
    images = [p for p in files if _suffix(p) in IMAGE_SUFFIXES]
    if tables and images:
        raise SpecErrors.single(f"data folder {root} mixes tables and images", hint=_KINDS_HINT)
    if tables:
        return _table_shards(str(root), tables)
    if images:
        return Source(str(root), IMAGES, images, None)
    raise SpecErrors.single(f"data folder {root} holds no data files", hint=_KINDS_HINT)


def _entries(folder: Path, chain: list[str]) -> list[Path]:
    """The visible entries of `folder`, sorted by name (files named with a leading dot are left out)."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if not e.name.startswith("."))
    except OSError as exc:
        raise SpecErrors.single(f"cannot list data folder {folder}: {exc.strerror or exc}") from None
    budget.current().charge("data-files", len(names), None, f"data folder {folder}'s {len(names):,} entries")
    return [folder / name for name in names]


def walk(folder: Path, chain: list[str]) -> list[Path]:
    """Every file under `folder`, sorted, links followed; `chain` holds the real paths of the
    folders above it. A folder that is its own ancestor (a link loop) is refused."""
    real = os.path.realpath(folder)
    if real in chain:
        raise SpecErrors.single(
            f"data folder {folder} is a link back to {real}, a folder that holds it: a symlink loop",
            hint="remove the link, or point it outside the data folder",
        )
    found = []
    for entry in _entries(folder, chain):
        if entry.is_dir():
            found += walk(entry, [*chain, real])
        elif entry.is_file():
            found.append(entry)
        elif entry.is_symlink():  # a link to nowhere, or to itself
            raise SpecErrors.single(
                f"data folder {folder}: {entry} is a link that leads nowhere (broken, or a symlink loop)",
                hint="remove the link",
            )
    return found


def listing_digest(files: list[Path]) -> str:
    """A digest of the data files `files` (a source's examples or shards, as listed): each
    one's path, size and modification time, in order. It changes when a file is added, removed,
    renamed (a class folder too), resized or rewritten, and costs one `stat` a file: no file is
    read, however large the data."""
    import hashlib

    digest = hashlib.sha256()
    for file in files:
        try:
            status = Path(file).stat()
        except OSError as exc:
            raise SpecErrors.single(f"cannot read data file {file}: {exc.strerror or exc}") from None
        digest.update(f"{file}\0{status.st_size}\0{status.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + digest.hexdigest()
