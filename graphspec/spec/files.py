"""Where the files a spec reads (nested specs, included blocks) come from.

`WORKING_TREE` reads them from disk. A spec read from a git revision (`HEAD~1:specs/a.yaml`)
reads them from that same revision through `graphspec.revision.RevisionFiles`, so that an old
spec is compared with the nested specs it had then, not with today's.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from graphspec import budget
from graphspec.errors import Location, SpecErrors
from graphspec.spec.source import MAX_BYTES


def read_regular(path: Path, shown: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the regular file at `path` (named `shown` in messages), at most `limit` of
    them, charged to the command's `bytes` budget before they are read.

    A FIFO, a device or a folder is refused from `stat` before it is opened (a FIFO would block
    the open, `/dev/zero` would never end), and the open itself does not block, so a file
    swapped for a FIFO after the check is refused too. Raises `SpecErrors` at the file's first
    line, and OSError when it cannot be read.
    """
    where = Location(shown, 1, 1)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise SpecErrors.single(f"{shown} is not a regular file; a spec is read only from a file", where)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SpecErrors.single(f"{shown} is not a regular file; a spec is read only from a file", where)
        size = info.st_size
        if size > limit:
            raise SpecErrors.single(f"file is {size:,} bytes; a spec may have at most {limit:,}", where)
        budget.current().charge("bytes", size, where, f"this file's {size:,} bytes")
        data = handle.read(size + 1)  # a file that grew since is caught below, unread past this
    if len(data) > size:
        raise SpecErrors.single(f"{shown} changed while it was read", where)
    return data


class Files:
    """The working tree: files as they are on disk, named by their paths."""

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def read(self, path: Path) -> str:
        """The file's text; raises OSError or UnicodeDecodeError when it cannot be read, and
        `SpecErrors` at its first line when it is not a regular file or is over `MAX_BYTES`, or
        when its size passes what the command's budget has left of `bytes`: all decided from
        its size before any of it is read."""
        data = read_regular(path, self.name(path, str(path)))
        # Universal newlines, as reading in text mode gives: positions count "\r\n" as one.
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def name(self, path: Path, shown: str) -> str:
        """How messages name `path`, which the spec wrote as `shown`."""
        return shown

    def specs_in(self, folder: Path) -> list[str]:
        """The names of the YAML files in `folder`, for "did you mean" hints."""
        if not folder.is_dir():
            return []
        return sorted(name for name in os.listdir(folder) if name.endswith((".yaml", ".yml")))


WORKING_TREE = Files()
