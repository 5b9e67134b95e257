"""Tables as data: CSV, TSV, JSON Lines and Parquet, one file or shards, read in chunks.

Every line of a text table is read with a bound (the `data-line` limit), so a file of one 2 GB
line is refused after reading that much of it. The header (a CSV's first line, a JSON Lines
file's first object's keys, a Parquet file's schema) is read alone first, so a spec's columns
are checked against it before anything else; a Parquet schema also tells each column's type, so
a column of strings where numbers are needed is refused from it, without reading a row.

A table is cut into chunks (`Chunk`): a Parquet row group, or `CHUNK_ROWS` records of a text
table, found by one `scan` that checks every cell the spec reads (a ragged row, a cell that is
not a number in a numeric column, a line that is not UTF-8, a null Parquet cell: each refused
with the file, line or row, and column) and keeps only where each chunk starts and each label
column's distinct labels. `read_chunk` then reads one chunk's columns as arrays, seeking to it,
so training holds a few chunks at a time (`graphspec.data.stream`), not the table.
`read_columns` reads them all, charging what it keeps to the `data-bytes` limit (predict).

A bad row (a ragged row, a cell that is not a number, a line that is not UTF-8 or not a JSON
object, a null Parquet cell) is refused by default. Given an `OnBad`, `scan` and `read_chunk`
hand it each bad row instead, and leave the row out where it returns (`train --skip-bad`).
What is wrong with a whole file (no header, a missing column, a damaged Parquet footer, a line
over the `data-line` limit, a CSV the csv module cannot go on reading) is always refused.
No TensorFlow here; pyarrow is imported only for a Parquet table.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphspec import budget
from graphspec.errors import Location, SpecErrors, did_you_mean

CSV, TSV, JSONL, PARQUET = "csv", "tsv", "jsonl", "parquet"
_KIND = {".csv": CSV, ".tsv": TSV, ".jsonl": JSONL, ".ndjson": JSONL, ".parquet": PARQUET}
# A Parquet column's type, as the spec needs it: numbers, text, or neither (lists, structs...).
NUMBER, TEXT, OTHER = "number", "text", "other"
# Records of a text table per chunk: where a chunk starts is all the scan keeps of it.
CHUNK_ROWS = 4096

# What a reader does with a bad row: given its shard's index, its line (a Parquet row's number)
# in that file, its index in the whole table and the error, it raises to stop reading, or
# returns to leave the row out.
OnBad = Callable[[int, int, int, SpecErrors], None]


@dataclass
class Table:
    """A table's shards (read in this order) and the columns its header names."""

    path: str
    shards: list[Path]
    kind: str
    header: list[str]
    # A Parquet table's column types (NUMBER, TEXT or OTHER) from its schema; empty for text
    # tables, whose cells are checked as they are read.
    types: dict[str, str] = field(default_factory=dict)

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


def _lines(path: Path, offset: int = 0, first: int = 1) -> Iterator[tuple[int, str, int, SpecErrors | None]]:
    """(line number, text, the offset just past it, None) of each line of `path` from byte
    `offset` (the start of line `first`), each read with the `data-line` bound. A line that is
    not UTF-8 comes with its error in place of None (and its text decoded with replacements)."""
    limit = budget.current().limits["data-line"]
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; the generator may be abandoned)
    except OSError as exc:
        raise SpecErrors.single(f"cannot read table {path}: {exc.strerror or exc}") from None
    with handle:
        handle.seek(offset)
        number = first - 1
        while True:
            raw = handle.readline(limit + 2)
            if not raw:
                return
            number += 1
            if len(raw.rstrip(b"\r\n")) > limit:
                raise budget.current().refusal(
                    "data-line", f"line {number} of table {path}, over {limit:,} bytes long,", None
                )
            error = None
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                error = SpecErrors.single(
                    f"line {number} of table {path} is not UTF-8 (byte 0x{raw[exc.start]:02x})",
                    Location(str(path), number, exc.start + 1),
                    hint="convert the file to UTF-8",
                )
                text = raw.decode("utf-8", errors="replace")
            yield number, text, handle.tell(), error


def _records(
    path: Path, kind: str, offset: int = 0, first: int = 1
) -> Iterator[tuple[int, list[str] | dict | SpecErrors, int, int]]:
    """(line number, record, the offset just past it, its last line's number) of each
    non-blank record from byte `offset` (the start of line `first`): a list of cells, a JSON
    object, or the error that makes it a bad row (not UTF-8; not JSON, or not an object)."""
    if kind == JSONL:
        for number, text, end, error in _lines(path, offset, first):
            if error is None and not text.strip():
                continue
            yield number, error or _object(text, path, number), end, number
        return
    lines = _lines(path, offset, first)
    # The line number a record starts at, and the offset past its last line: the csv reader
    # asks for one line at a time and never reads past the end of a record.
    seen: dict[str, Any] = {"start": first, "number": first - 1, "end": offset, "fresh": True, "error": None}

    def texts() -> Iterator[str]:
        for number, text, end, error in lines:
            if seen["fresh"]:
                seen["start"], seen["fresh"], seen["error"] = number, False, None
            seen["number"], seen["end"] = number, end
            seen["error"] = seen["error"] or error  # the record's first line that is not UTF-8
            yield text

    # A quoted cell may span lines; its bound is the line bound.
    csv.field_size_limit(max(budget.current().limits["data-line"], 1))
    reader = csv.reader(texts(), delimiter="\t" if kind == TSV else ",")
    try:
        for row in reader:
            seen["fresh"] = True
            if row or seen["error"] is not None:
                yield seen["start"], seen["error"] or row, seen["end"], seen["number"]
    except csv.Error as exc:
        number = seen["number"] if seen["number"] >= first else first
        raise SpecErrors.single(
            f"line {number} of table {path} cannot be read as {kind.upper()}: {exc}",
            Location(str(path), number, 1),
        ) from None


def _object(text: str, path: Path, number: int) -> dict | SpecErrors:
    """Line `number` of a JSON Lines table as its object, or the error that makes it a bad row."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return SpecErrors.single(
            f"line {number} of table {path} is not JSON: {exc.msg}", Location(str(path), number, exc.colno)
        )
    if not isinstance(record, dict):
        return SpecErrors.single(
            f"line {number} of table {path} is a JSON {type(record).__name__}, not an object",
            Location(str(path), number, 1),
            hint='JSON Lines tables hold one object per line: {"column": value, ...}',
        )
    return record


def open_table(path: str, shards: list[Path]) -> Table:
    """The table of `shards`, its header read from each (they must agree). An empty file, or a
    file with a header and no rows in a table of one file, is refused. A Parquet table's schema
    is read (its types too), none of its rows."""
    kind = _KIND[shards[0].suffix.lower()]
    header: list[str] | None = None
    types: dict[str, str] = {}
    for shard in shards:
        if kind == PARQUET:
            names, shard_types = _parquet_schema(shard)
            number = 1
            if header is not None and shard_types != types:
                names = [*names, "(types)"]  # same names, other types: refused as other columns
            types = types or shard_types
        else:
            first = next(_records(shard, kind), None)
            if first is None:
                raise SpecErrors.single(
                    f"table {shard} is empty", hint="a table starts with a header line naming its columns"
                )
            number, record, _, _ = first
            if isinstance(record, SpecErrors):
                raise record  # a header that cannot be read is the whole file's problem
            names = list(record) if kind == JSONL else [c.strip() for c in record]
            if kind != JSONL and len(set(names)) != len(names):
                twice = next(n for n in names if names.count(n) > 1)
                raise SpecErrors.single(
                    f"table {shard} names column '{twice}' twice", Location(str(shard), 1, 1)
                )
        if header is None:
            header = names
        elif names != header:
            raise SpecErrors.single(
                f"table shard {shard} has other columns than {shards[0]}",
                Location(str(shard), number, 1),
                hint="every shard of a table has the same header"
                + (" and column types" if kind == PARQUET else ""),
            )
    return Table(path, shards, kind, header or [], types)


def _pyarrow() -> Any:
    """pyarrow.parquet, or a `SpecErrors` saying how to install it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SpecErrors.single(
            "reading a Parquet table needs pyarrow, which is not installed",
            hint="pip install pyarrow (graphspec's dependencies name it)",
        ) from None
    # Arrow's default allocator (mimalloc) keeps what a window freed: streaming a 250 MB table
    # then peaks about 30 MB higher than reading one window. The C library's gives it back.
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
    return pq


def _parquet_file(shard: Path) -> Any:
    """`shard` opened as a Parquet file (its footer read); an empty or damaged file refused."""
    pq = _pyarrow()
    import pyarrow as pa

    try:
        empty = shard.stat().st_size == 0
    except OSError as exc:
        raise SpecErrors.single(f"cannot read table {shard}: {exc.strerror or exc}") from None
    if empty:
        raise SpecErrors.single(
            f"table {shard} is empty", hint="a Parquet file holds a schema and row groups; write it again"
        )
    try:
        return pq.ParquetFile(shard)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SpecErrors.single(
            f"table {shard} is not a readable Parquet file: {' '.join(str(exc).split())[:200]}",
            hint="the file is damaged or truncated, or not Parquet; write it again",
        ) from None


def _type(arrow_type: Any) -> str:
    import pyarrow as pa

    types = pa.types
    if types.is_integer(arrow_type) or types.is_floating(arrow_type) or types.is_boolean(arrow_type):
        return NUMBER
    if types.is_decimal(arrow_type):
        return NUMBER
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return TEXT
    if types.is_dictionary(arrow_type):
        return _type(arrow_type.value_type)
    return OTHER


def _parquet_schema(shard: Path) -> tuple[list[str], dict[str, str]]:
    schema = _parquet_file(shard).schema_arrow
    names = list(schema.names)
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise SpecErrors.single(f"table {shard} names column '{twice}' twice", Location(str(shard), 1, 1))
    return names, {f.name: _type(f.type) for f in schema}


def type_name(table: Table, column: str) -> str:
    """How a Parquet column's type is written in its schema (for messages)."""
    schema = _parquet_file(table.shards[0]).schema_arrow
    return str(schema.field(column).type)


@dataclass(frozen=True)
class Chunk:
    """Rows of one shard read together: a Parquet row group (`offset` its index; `line` its
    first row's number in the file, from 1), or up to `CHUNK_ROWS` records of a text table
    starting at byte `offset`, which is the start of line `line`. `first` is its first row's
    index in the whole table."""

    shard: int
    first: int
    rows: int
    offset: int
    line: int


@dataclass
class Scan:
    """What one pass over a table found: its chunks in order, its row count, and the distinct
    labels of each column asked for."""

    chunks: list[Chunk]
    rows: int
    labels: dict[str, set[str]]


def _where(table: Table, shard: int, number: int) -> Location:
    return Location(str(table.shards[shard]), number, 1)


def scan(
    table: Table, numeric: list[str], text: list[str], labels: list[str], bad: OnBad | None = None
) -> Scan:
    """One pass over `table` that checks every cell of `numeric` (a number, not null) and of
    `text` (present, not null), collects the distinct `labels` cells of each column named there
    (each new label charged to `data-bytes`), and cuts the table into chunks. Raises `SpecErrors`
    at the file and line or row of the first bad cell; given `bad`, hands it each bad row (its
    labels not collected; it stays in its chunk) and goes on. A table with no rows is refused."""
    found: dict[str, set[str]] = {name: set() for name in labels}
    chunks: list[Chunk] = []
    rows = 0
    meter = budget.current()

    def note(column: str, value: Any, where: Location) -> None:
        label = label_of(value)
        if label not in found[column]:
            meter.charge("data-bytes", _ROW_BYTES + len(label), where, f"the labels of table {table.path}")
            found[column].add(label)

    if table.kind == PARQUET:
        for index, shard in enumerate(table.shards):
            handle = _parquet_file(shard)
            line = 1
            for group in range(handle.metadata.num_row_groups):
                count = handle.metadata.row_group(group).num_rows
                chunk = Chunk(index, rows, count, group, line)
                if count:
                    _check_group_size(table, handle, chunk, [*numeric, *text])
                    nulls = _check_nulls(table, handle, chunk, [*numeric, *text], bad)
                    if labels:
                        values = _parquet_columns(table, handle, chunk, labels, bad, nulls)[0]
                        for column in labels:
                            cells = values[column]
                            if len(nulls):
                                cells = cells.filter(_mask(len(cells), nulls, keep=False))
                            for value in dict.fromkeys(cells.tolist()):
                                note(column, value, _where(table, index, line))
                    chunks.append(chunk)
                rows += count
                line += count
    else:
        for index, shard in enumerate(table.shards):
            records = _records(shard, table.kind)
            start, line = 0, 1
            if table.kind != JSONL:
                _, _, start, last = next(records)  # the header (open_table refused an empty file)
                line = last + 1
            count = 0
            for number, cells, (end, last) in _cells(table, index, numeric, text, records):
                try:
                    if isinstance(cells, SpecErrors):
                        raise cells
                    for name in numeric:
                        _number(cells[name], name, shard, number, _where(table, index, number))
                except SpecErrors as error:
                    if bad is None:
                        raise
                    bad(index, number, rows + count, error)
                else:
                    for column in labels:
                        note(column, cells[column], _where(table, index, number))
                count += 1
                if count == CHUNK_ROWS:
                    chunks.append(Chunk(index, rows, count, start, line))
                    rows += count
                    start, count = end, 0
                    line = last + 1
            if count:
                chunks.append(Chunk(index, rows, count, start, line))
                rows += count
    if not rows:
        raise SpecErrors.single(f"table {table.path} has no rows", hint="a table holds a header and rows")
    return Scan(chunks, rows, found)


def _cells(
    table: Table, shard: int, numeric: list[str], text: list[str], records: Iterator
) -> Iterator[tuple[int, dict | SpecErrors, tuple[int, int]]]:
    """(line number, the cells named in `numeric` and `text`, (the offset past the record, its
    last line's number)) of each record of a text table's shard. A record that is a bad row
    (ragged, not UTF-8, not a JSON object) comes as its error in place of its cells."""
    names = [*numeric, *text]
    index = {name: table.header.index(name) for name in names}
    path = table.shards[shard]
    for number, record, end, last in records:
        if isinstance(record, SpecErrors):
            cells: dict | SpecErrors = record
        elif table.kind == JSONL:
            cells = _object_cells(record, names, path, number, _where(table, shard, number))
        elif len(record) != len(table.header):
            cells = SpecErrors.single(
                f"row at line {number} of table {path} has {len(record)} cells; its header "
                f"has {len(table.header)} columns",
                _where(table, shard, number),
                hint="a ragged row: every row has one cell per column",
            )
        else:
            cells = {name: record[i] for name, i in index.items()}
        yield number, cells, (end, last)


def _check_nulls(
    table: Table, handle: Any, chunk: Chunk, columns: list[str], bad: OnBad | None = None
) -> np.ndarray:
    """Refuse a null cell of `columns` in a Parquet row group, found from its statistics where
    it has them (the column is read only when they count a null, or have no count). Given
    `bad`, each row with a null is handed to it; returns their positions in the row group."""
    group = handle.metadata.row_group(chunk.offset)
    positions = {group.column(i).path_in_schema: i for i in range(group.num_columns)}
    suspect = []
    for name in dict.fromkeys(columns):
        stats = group.column(positions[name]).statistics if name in positions else None
        if stats is None or not stats.has_null_count or stats.null_count:
            suspect.append(name)
    if suspect:
        return _parquet_columns(table, handle, chunk, suspect, bad)[1]
    return np.zeros(0, dtype=np.int64)


def _mask(count: int, positions: np.ndarray, keep: bool) -> np.ndarray:
    """A mask of `count` rows, `keep` at `positions` and the opposite elsewhere."""
    mask = np.full(count, not keep)
    mask[positions] = keep
    return mask


def _check_group_size(table: Table, handle: Any, chunk: Chunk, columns: list[str]) -> None:
    """Refuse a row group whose `columns` would pass the `data-bytes` limit, from its footer:
    a row group is read whole, and a compressed one of one repeated value can declare gigabytes.
    Each column counts what its footer says it inflates to, at least 8 bytes a cell."""
    group = handle.metadata.row_group(chunk.offset)
    declared = sum(
        max(group.column(i).total_uncompressed_size, 8 * chunk.rows)
        for i in range(group.num_columns)
        if group.column(i).path_in_schema in columns
    )
    shard = table.shards[chunk.shard]
    budget.current().check(
        "data-bytes",
        declared,
        Location(str(shard), chunk.line, 1),
        f"row group {chunk.offset} of table {shard} ({chunk.rows:,} rows; {declared:,} bytes of the "
        f"columns read)",
    )


def _parquet_columns(
    table: Table,
    handle: Any,
    chunk: Chunk,
    columns: list[str],
    bad: OnBad | None = None,
    known: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """The Arrow columns `columns` of a Parquet chunk (with `rows`, positions in it, those rows
    alone), and the positions of its rows with a null cell, in order. A null cell is refused
    with its row; given `bad`, each such row (but those of `known`, positions found before) is
    handed to it once instead."""
    import pyarrow as pa
    import pyarrow.compute as pc

    shard = table.shards[chunk.shard]
    wanted = list(dict.fromkeys(columns))
    _check_group_size(table, handle, chunk, wanted)
    try:
        read = handle.read_row_group(chunk.offset, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise SpecErrors.single(
            f"row group {chunk.offset} of table {shard} cannot be read: {' '.join(str(exc).split())[:200]}",
            Location(str(shard), chunk.line, 1),
            hint="the file is damaged or truncated; write it again",
        ) from None
    values = {}
    nulls: dict[int, SpecErrors] = {}
    for name in dict.fromkeys(columns):
        column = read.column(name).combine_chunks()
        if rows is not None:
            column = column.take(rows)
        if column.null_count:
            found = np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))
            for position in found if bad is not None else found[:1]:
                at = int(rows[position]) if rows is not None else int(position)
                row = chunk.line + at
                error = SpecErrors.single(
                    f"row {row} of table {shard}, column '{name}': the cell is empty (null)",
                    Location(str(shard), row, 1),
                    hint="fill the cell, or remove the row",
                )
                if bad is None:
                    raise error
                nulls.setdefault(at, error)
        values[name] = column
    for at in sorted(nulls):
        if known is None or at not in known:
            bad(chunk.shard, chunk.line + at, chunk.first + at, nulls[at])
    return values, np.asarray(sorted(nulls), dtype=np.int64)


def read_chunk(
    table: Table,
    chunk: Chunk,
    numeric: list[str],
    text: list[str],
    handles: dict[int, Any] | None = None,
    rows: np.ndarray | None = None,
    bad: OnBad | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rows of `chunk`: each of `numeric` as float64 and each of `text` as an object array
    of str, and each row's number in its shard. `handles` keeps Parquet files open between calls.
    With `rows` (ascending positions in the chunk), those rows alone: the others' cells are not
    converted or checked (a multi-process run's process reads its share; rows left out of
    training). Bad cells are refused as `scan` refuses them (the file may have changed since);
    given `bad`, each bad row is handed to it and left out of what is returned."""
    if table.kind == PARQUET:
        handles = handles if handles is not None else {}
        if chunk.shard not in handles:
            handles[chunk.shard] = _parquet_file(table.shards[chunk.shard])
        handle = handles[chunk.shard]
        columns, nulls = _parquet_columns(table, handle, chunk, [*numeric, *text], bad, rows=rows)
        where = np.arange(chunk.line, chunk.line + chunk.rows, dtype=np.int64)
        if rows is not None:
            where = where[rows]
        if len(nulls):  # rows handed to `bad`: left out
            keep = _mask(len(where), nulls if rows is None else np.searchsorted(rows, nulls), keep=False)
            columns = {name: column.filter(keep) for name, column in columns.items()}
            where = where[keep]
        # `_plan` refused a column of another type where numbers are needed, from the schema.
        arrays = {name: columns[name].cast("float64").to_numpy(zero_copy_only=False) for name in numeric}
        for name in text:
            arrays[name] = np.asarray([str(v) for v in columns[name].to_pylist()], dtype=object)
        return arrays, where
    wanted = None
    if rows is not None:
        wanted = np.zeros(chunk.rows, dtype=bool)
        wanted[rows] = True
    numbers: dict[str, array] = {name: array("d") for name in numeric}
    texts: dict[str, list[str]] = {name: [] for name in text}
    lines = array("q")
    shard = table.shards[chunk.shard]
    records = _records(shard, table.kind, chunk.offset, chunk.line)
    for position, (number, cells, _) in enumerate(_cells(table, chunk.shard, numeric, text, records)):
        if wanted is None or wanted[position]:
            try:
                if isinstance(cells, SpecErrors):
                    raise cells
                # Every number converted before any is kept: a bad row leaves no cell behind.
                where = _where(table, chunk.shard, number)
                row = [_number(cells[n], n, shard, number, where) for n in numeric]
            except SpecErrors as error:
                if bad is None:
                    raise
                bad(chunk.shard, number, chunk.first + position, error)
            else:
                for name, value in zip(numeric, row, strict=True):
                    numbers[name].append(value)
                for name in text:
                    texts[name].append(str(cells[name]))
                lines.append(number)
        if position + 1 == chunk.rows:
            break
    arrays = {name: np.frombuffer(numbers[name], dtype=np.float64) for name in numeric}
    arrays.update({name: np.asarray(texts[name], dtype=object) for name in text})
    return arrays, np.frombuffer(lines, dtype=np.int64)


def label_of(value: Any) -> str:
    """A cell as a class label: 3, 3.0 and "3" are one label."""
    text_value = str(value).strip()
    try:
        number = float(text_value)
        if number.is_integer():
            return str(int(number))
    except (ValueError, OverflowError):
        pass
    return text_value


# What one row kept costs beyond its cells, charged to `data-bytes`: its id (`file:line`) and
# the Python objects that hold it.
_ROW_BYTES = 100


def read_columns(
    table: Table, numeric: list[str], text: list[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """One pass over `table`: each of `numeric` as float64 and each of `text` as str, and each
    row's id (`file:line`, a Parquet row's `file:row`). What is kept is charged to the
    `data-bytes` limit row by row (8 bytes a number, a text cell's length, `_ROW_BYTES` a row;
    a Parquet row group at once), so a table too large to hold is refused at the line that
    passes it. Raises `SpecErrors` with file, line and column for a ragged row, a cell that is
    not a number in a numeric column, and a table with no rows."""
    meter = budget.current()
    if table.kind == PARQUET:
        parts, ids = [], []
        handles: dict[int, Any] = {}
        for chunk in scan(table, numeric, text, []).chunks:
            shard = table.shards[chunk.shard]
            cost = chunk.rows * (_ROW_BYTES + 8 * len(numeric))
            meter.charge(
                "data-bytes",
                cost,
                Location(str(shard), chunk.line, 1),
                f"table {table.path}, kept up to row {chunk.line + chunk.rows - 1} of {shard},",
            )
            values, rows = read_chunk(table, chunk, numeric, text, handles)
            for name in text:
                meter.charge("data-bytes", sum(len(v) for v in values[name]), None, f"table {table.path}")
            parts.append(values)
            ids += [f"{shard}:{row}" for row in rows.tolist()]
        return {name: np.concatenate([p[name] for p in parts]) for name in [*numeric, *text]}, ids
    numbers: dict[str, array] = {name: array("d") for name in numeric}
    texts: dict[str, list[str]] = {name: [] for name in text}
    ids: list[str] = []
    for index, shard in enumerate(table.shards):
        records = _records(shard, table.kind)
        if table.kind != JSONL:
            next(records, None)  # the header
        for number, cells, _ in _cells(table, index, numeric, text, records):
            if isinstance(cells, SpecErrors):
                raise cells
            where = _where(table, index, number)
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


def _object_cells(
    record: dict, names: list[str], shard: Path, number: int, where: Location
) -> dict | SpecErrors:
    """The cells `names` of a JSON Lines row, or the error that makes it a ragged row."""
    missing = [name for name in names if name not in record]
    if missing:
        return SpecErrors.single(
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
