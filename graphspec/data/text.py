"""Text files as string inputs: each file one example, read within a bound and decoded as UTF-8.

A file larger than the `data-line` limit is refused from its size, before it is read; a file
that is not UTF-8 is refused naming the line and byte where decoding fails. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path

from graphspec import budget
from graphspec.errors import SpecErrors


def read(path: Path) -> str:
    """The text of `path`, decoded as UTF-8 (a leading byte-order mark dropped)."""
    limit = budget.current().limits["data-line"]
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SpecErrors.single(f"cannot read text file {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise budget.current().refusal("data-line", f"text file {path}", None)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecErrors.single(
            f"text file {path}:{line}:{column} is not UTF-8 (byte 0x{data[exc.start]:02x})",
            hint="convert it to UTF-8, e.g. iconv -f latin1 -t utf-8",
        ) from None
