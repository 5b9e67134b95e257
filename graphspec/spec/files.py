"""Where the files a spec reads (nested specs, included blocks) come from.

`WORKING_TREE` reads them from disk. A spec read from a git revision (`HEAD~1:specs/a.yaml`)
reads them from that same revision through `graphspec.revision.RevisionFiles`, so that an old
spec is compared with the nested specs it had then, not with today's.
"""

from __future__ import annotations

import os
from pathlib import Path

from graphspec.errors import Location, SpecErrors
from graphspec.spec.source import MAX_BYTES


class Files:
    """The working tree: files as they are on disk, named by their paths."""

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def read(self, path: Path) -> str:
        """The file's text; raises OSError or UnicodeDecodeError when it cannot be read, and
        `SpecErrors` at its first line when it is over `MAX_BYTES`, having read at most one
        byte more than that (a 250 MB file is refused, not loaded into memory)."""
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(MAX_BYTES + 1) if size <= MAX_BYTES else b""
        if size > MAX_BYTES or len(data) > MAX_BYTES:  # a pipe or device reports no size
            shown = f"{size:,} bytes" if size > MAX_BYTES else f"over {MAX_BYTES:,} bytes"
            raise SpecErrors.single(
                f"file is {shown}; a spec may have at most {MAX_BYTES:,}",
                Location(self.name(path, str(path)), 1, 1),
            )
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
