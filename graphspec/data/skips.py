"""Bad examples found mid-stream, and the policy for them: stop, or skip at most a limit.

A reader that finds an example bad while training (an image truncated since its header was
checked, a text file that is not UTF-8) raises `SpecErrors`. By default that stops the run
(`graphspec.keras.train` leaves it resumable). With `train --skip-bad N`, `Skips` lets the
reader drop the example from its batch instead, counts the distinct examples dropped over the
whole run (a resumed run counts those its folder records), and stops the run at the (N+1)th.
Each one is recorded once in the run directory, one JSON object a line in `skipped.jsonl`:
`{"file": ..., "row": ..., "reason": ..., "epoch": ...}` (`row` null where the example is a
whole file; `epoch` null where it was found before training, by the scan of a table, whose bad
rows are then left out of training from the start). No TensorFlow here.

>>> skips = Skips(1)
>>> skips.skip("a.png", SpecErrors.single("image a.png is damaged"), epoch=0)
>>> len(skips)
1
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from graphspec import atomic
from graphspec.errors import SpecErrors

SKIPPED_FILE = "skipped.jsonl"


def checked_limit(limit: Any) -> int:
    """`limit` as a count of examples that may be skipped; `SpecErrors` unless it is a whole
    number, 0 or more."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise SpecErrors.single(
            f"`--skip-bad` takes how many bad examples may be skipped, a whole number 0 or more. "
            f"Received: {limit!r}"
        )
    return limit


class Skips:
    """The bad examples a run skipped, at most `limit` distinct ones (0: none, the first stops
    the run). Readers of several threads may call `skip` at once."""

    def __init__(self, limit: int = 0):
        self.limit = checked_limit(limit)
        self.directory: Path | None = None
        self._records: dict[tuple[str, int | None], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: tuple[str, int | None]) -> bool:
        """Whether the example (file, row) was skipped already."""
        return (str(key[0]), key[1]) in self._records

    @property
    def records(self) -> list[dict[str, Any]]:
        """What each skipped example's line of `skipped.jsonl` holds, in the order found."""
        return list(self._records.values())

    def skip(self, example: str, error: SpecErrors, epoch: int | None, row: int | None = None) -> None:
        """Drop `example` (a file; with `row`, a table's row) for `error`, found in `epoch`, or
        raise: `error` itself when skipping is off, and an error naming the limit when it is
        the (limit+1)th distinct example. An example already skipped is not counted again."""
        if not self.limit:
            raise error
        diagnostic = error.diagnostics.errors[0]
        key = (str(example), row)
        with self._lock:
            if key in self._records:
                return
            if len(self._records) >= self.limit:
                where = f"{example}:{row}" if row is not None else str(example)
                # Before the run directory exists, the examples found bad are named here.
                listed = (
                    f"{SKIPPED_FILE} in the run lists those skipped"
                    if self.directory is not None
                    else "found before it: " + ", ".join(_where(r) for r in self._records.values())
                )
                raise SpecErrors.single(
                    f"{where} is bad example {self.limit + 1}, past `--skip-bad {self.limit}`: "
                    f"{diagnostic.message}",
                    diagnostic.location,
                    hint=f"fix or remove the bad examples ({listed}), or allow more with --skip-bad",
                )
            self._records[key] = {
                "file": str(example),
                "row": row,
                "reason": diagnostic.message,
                "epoch": epoch,
            }
            if self.directory is not None:
                self._write()

    def found_while_training(self, example: str, row: int | None = None) -> bool:
        """Whether the example (file, row) was skipped as training read it (not by a scan
        before training): a resumed run keeps such a table row in its order, as the run did."""
        record = self._records.get((str(example), row))
        return record is not None and record.get("epoch") is not None

    def recall(self, directory: Path) -> None:
        """Count the examples `directory/skipped.jsonl` records (a resumed run's), without
        writing there: known before its data is scanned, they are not counted twice."""
        path = Path(directory) / SKIPPED_FILE
        if path.is_file():
            with self._lock:
                for record in _read(path):
                    self._records.setdefault((record["file"], record["row"]), record)

    def attach(self, directory: Path) -> None:
        """Record skips in `directory/skipped.jsonl` from now on (those found before too). The
        examples it already records (a resumed run's) count toward the limit."""
        path = Path(directory) / SKIPPED_FILE
        with self._lock:
            if path.is_file():
                for record in _read(path):
                    self._records.setdefault((record["file"], record["row"]), record)
            self.directory = Path(directory)
            if self._records:
                self._write()

    def _write(self) -> None:
        # The whole file, through a rename: a kill mid-write never leaves half a line.
        lines = "".join(json.dumps(r) + "\n" for r in self._records.values())
        atomic.write_text(self.directory / SKIPPED_FILE, lines)


def _where(record: dict[str, Any]) -> str:
    return f"{record['file']}:{record['row']}" if record["row"] is not None else record["file"]


def _read(path: Path) -> list[dict[str, Any]]:
    """The records of a run's `skipped.jsonl`; `SpecErrors` at the line that is not one."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("file"), str)
            or not isinstance(record.get("row"), int | None)
        ):
            raise SpecErrors.single(
                f"{SKIPPED_FILE} is damaged at line {number}: each line is a JSON object with "
                "`file` and `row`",
                hint=f"remove {path} to count the skips of this run anew",
            )
        records.append(record)
    return records
