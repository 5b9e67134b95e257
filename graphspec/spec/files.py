"""Where the files a spec reads (nested specs, included blocks) come from.

`WORKING_TREE` reads them from disk. A spec read from a git revision (`HEAD~1:specs/a.yaml`)
reads them from that same revision through `graphspec.revision.RevisionFiles`, so that an old
spec is compared with the nested specs it had then, not with today's.
"""

from __future__ import annotations

import os
from pathlib import Path


class Files:
    """The working tree: files as they are on disk, named by their paths."""

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def read(self, path: Path) -> str:
        """The file's text; raises OSError or UnicodeDecodeError when it cannot be read."""
        return path.read_text(encoding="utf-8")

    def name(self, path: Path, shown: str) -> str:
        """How messages name `path`, which the spec wrote as `shown`."""
        return shown

    def specs_in(self, folder: Path) -> list[str]:
        """The names of the YAML files in `folder`, for "did you mean" hints."""
        if not folder.is_dir():
            return []
        return sorted(name for name in os.listdir(folder) if name.endswith((".yaml", ".yml")))


WORKING_TREE = Files()
