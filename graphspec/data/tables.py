"""Tables as data: CSV, TSV and JSON Lines, one file or shards, read line by line.

Every line is read with a bound (the `data-line` limit), so a file of one 2 GB line is refused
after reading that much of it. The header (a CSV's first line, a JSON Lines file's first
object's keys) is read alone first, so a spec's columns are checked against it before anything
else; then one pass reads the columns the spec names, nothing else, checking every cell: a
ragged row, a cell that is not a number in a numeric column, a line that is not UTF-8 are each
refused with the file, line and column. What is kept (numbers as float64, text cells, each
row's id) is charged to the `data-bytes` limit as it is read. No TensorFlow here.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphspec import budget
from graphspec.errors import Location, SpecErrors, did_you_mean

CSV, TSV, JSONL = "csv", "tsv", "jsonl"
_KIND = {".csv": CSV, ".tsv": TSV, ".jsonl": JSONL, ".ndjson": JSONL}


@dataclass
class Table:
    """A table's shards (read in this order) and the columns its header names."""

    path: str
    shards: list[Path]
    kind: str
    header: list[str]

    def resolve(self, columns: str | list[str]) -> list[str]:
        """Column names: a list as given, or a glob's matches in header order (none is an error,
        raised by the caller, which knows where the glob is written)."""
        if isinstance(columns, list):
            return columns
        return [c for c in self.header if fnmatch.fnmatchcase(c, columns)]

    def missing(self, column: str) -> str | None:
        """None if `column` is in the header, else a hint (did-you-mean, or the columns)."""
        if column in self.header:
            return None
        return did_you_mean(column, self.header) or "its columns: " + ", ".join(self.header[:20]) + (
            ", ..." if len(self.header) > 20 else ""
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of `path`, each read with the `data-line` bound."""
    limit = budget.current().limits["data-line"]
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; the generator may be abandoned)
    except OSError as exc:
        raise SpecErrors.single(f"cannot read table {path}: {exc.strerror or exc}") from None
    with handle:
        number = 0
        while True:
            raw = handle.readline(limit + 2)
            if not raw:
                return
            number += 1
            if len(raw.rstrip(b"\r\n")) > limit:
                raise budget.current().refusal(
                    "data-line", f"line {number} of table {path}, over {limit:,} bytes long,", None
                )
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise SpecErrors.single(
                    f"line {number} of table {path} is not UTF-8 (byte 0x{raw[exc.start]:02x})",
                    Location(str(path), number, exc.start + 1),
                    hint="convert the file to UTF-8",
                ) from None
            yield number, text


def _records(path: Path, kind: str) -> Iterator[tuple[int, list[str] | dict]]:
    """(line number, record) of each non-blank record: a list of cells, or a JSON object."""
    if kind == JSONL:
        for number, text in _lines(path):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SpecErrors.single(
                    f"line {number} of table {path} is not JSON: {exc.msg}",
                    Location(str(path), number, exc.colno),
                ) from None
            if not isinstance(record, dict):
                raise SpecErrors.single(
                    f"line {number} of table {path} is a JSON {type(record).__name__}, not an object",
                    Location(str(path), number, 1),
                    hint='JSON Lines tables hold one object per line: {"column": value, ...}',
                )
            yield number, record
        return
    lines = _lines(path)
    numbers: list[int] = []

    def texts() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text

    # A quoted cell may span lines; its bound is the line bound.
    csv.field_size_limit(max(budget.current().limits["data-line"], 1))
    reader = csv.reader(texts(), delimiter="\t" if kind == TSV else ",")
    try:
        for row in reader:
            if row:
                yield numbers[-1], row
    except csv.Error as exc:
        number = numbers[-1] if numbers else 1
        raise SpecErrors.single(
            f"line {number} of table {path} cannot be read as {kind.upper()}: {exc}",
            Location(str(path), number, 1),
        ) from None


def open_table(path: str, shards: list[Path]) -> Table:
    """The table of `shards`, its header read from each (they must agree). An empty file, or a
    file with a header and no rows in a table of one file, is refused."""
    kind = _KIND[shards[0].suffix.lower()]
    header: list[str] | None = None
    for shard in shards:
        first = next(_records(shard, kind), None)
        if first is None:
            raise SpecErrors.single(
                f"table {shard} is empty", hint="a table starts with a header line naming its columns"
            )
        number, record = first
        names = list(record) if kind == JSONL else [c.strip() for c in record]
        if kind != JSONL and len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise SpecErrors.single(f"table {shard} names column '{twice}' twice", Location(str(shard), 1, 1))
        if header is None:
            header = names
        elif names != header:
            raise SpecErrors.single(
                f"table shard {shard} has other columns than {shards[0]}",
                Location(str(shard), number, 1),
                hint="every shard of a table has the same header",
            )
    return Table(path, shards, kind, header or [])


# What one row kept costs beyond its cells, charged to `data-bytes`: its id (`file:line`) and
# the Python objects that hold it.
_ROW_BYTES = 100


def read_columns(
    table: Table, numeric: list[str], text: list[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """One pass over `table`: each of `numeric` as float64 and each of `text` as str, and each
    row's id (`file:line`). What is kept is charged to the `data-bytes` limit row by row (8
    bytes a number, a text cell's length, `_ROW_BYTES` a row), so a table too large to hold is
    refused at the line that passes it. Raises `SpecErrors` with file, line and column for a
    ragged row, a cell that is not a number in a numeric column, and a table with no rows."""
    numbers: dict[str, array] = {name: array("d") for name in numeric}
    texts: dict[str, list[str]] = {name: [] for name in text}
    ids: list[str] = []
    names = [*numeric, *text]
    index = {name: table.header.index(name) for name in names}
    meter = budget.current()
    for shard in table.shards:
        records = _records(shard, table.kind)
        if table.kind != JSONL:
            next(records, None)  # the header
        for number, record in records:
            where = Location(str(shard), number, 1)
            if table.kind == JSONL:
                cells = _object_cells(record, names, shard, number, where)
            else:
                if len(record) != len(table.header):
                    raise SpecErrors.single(
                        f"row at line {number} of table {shard} has {len(record)} cells; its header "
                        f"has {len(table.header)} columns",
                        where,
                        hint="a ragged row: every row has one cell per column",
                    )
                cells = {name: record[i] for name, i in index.items()}
            cost = _ROW_BYTES + 8 * len(numeric)
            for name in numeric:
                numbers[name].append(_number(cells[name], name, shard, number, where))
            for name in text:
                cell = str(cells[name])
                texts[name].append(cell)
                cost += len(cell)
            meter.charge(
                "data-bytes", cost, where, f"table {table.path}, kept up to line {number} of {shard},"
            )
            ids.append(f"{shard}:{number}")
    if not ids:
        raise SpecErrors.single(f"table {table.path} has no rows", hint="a table holds a header and rows")
    arrays = {name: np.frombuffer(numbers[name], dtype=np.float64) for name in numeric}
    arrays.update({name: np.asarray(texts[name], dtype=object) for name in text})
    return arrays, ids


def _object_cells(record: dict, names: list[str], shard: Path, number: int, where: Location) -> dict:
    missing = [name for name in names if name not in record]
    if missing:
        raise SpecErrors.single(
            f"row at line {number} of table {shard} has no '{missing[0]}'",
            where,
            hint="a ragged row: every object has the columns of the first",
        )
    return {name: record[name] for name in names}


def _number(cell: object, column: str, shard: Path, number: int, where: Location) -> float:
    if isinstance(cell, bool):
        return float(cell)
    if isinstance(cell, int | float):
        return float(cell)
    try:
        value = float(str(cell).strip())
        if not math.isnan(value) or str(cell).strip().lower() == "nan":
            return value
    except ValueError:
        pass
    shown = str(cell)[:40] if cell != "" else ""
    raise SpecErrors.single(
        f"row at line {number} of table {shard}, column '{column}': {shown!r} is not a number",
        where,
        hint="this column feeds a numeric input or target; fix the cell, or remove the row",
    )
