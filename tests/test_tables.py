"""Tables streamed (graphspec/data/tables.py, graphspec/data/stream.py): Parquet read like CSV,
its schema checked without reading rows, each kind of bad Parquet refused word for word, and
training that reads a table window by window in a seeded order, in bounded memory.

Every table is written at test time in tmp_path; the real data is scikit-learn's digits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.data import stream as stream_module
from graphspec.data import tables
from graphspec.data.examples import bind, check_header
from graphspec.errors import SpecErrors

pa = pytest.importorskip("pyarrow", reason="pyarrow (a dependency) is not installed")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (a dependency) is not installed")

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent

TABLE_SPEC = """
graphspec: 1
name: table
inputs:
  age: {shape: [1]}
  pixels: {shape: [3]}
layers:
  joined: {type: Concatenate, in: [age, pixels]}
  kind: {type: Dense, units: 2, activation: softmax, in: joined}
outputs:
  kind: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 2, batch_size: 4, seed: 0}
data:
  inputs:
    pixels: {columns: "p*"}
"""

# One column per line of the message: the rows of the table below.
ROWS = 40


def _columns(rows: int = ROWS) -> dict[str, list]:
    return {
        "age": list(range(rows)),
        "p0": [float(i) / 2 for i in range(rows)],
        "p1": [float(i % 7) for i in range(rows)],
        "p2": [1.5] * rows,
        "kind": ["cat" if i % 3 else "dog" for i in range(rows)],
    }


def _parquet(path: Path, columns: dict[str, list] | None = None, **options) -> Path:
    pq.write_table(pa.table(columns or _columns()), path, **options)
    return path


def _csv(path: Path, columns: dict[str, list] | None = None) -> Path:
    columns = columns or _columns()
    rows = zip(*columns.values(), strict=True)
    path.write_text(",".join(columns) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _message(exc: SpecErrors) -> str:
    return exc.diagnostics.render()


# --- Parquet read as CSV is -------------------------------------------------------------------


def test_a_parquet_table_reads_as_the_same_csv_does(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    parquet = bind(loaded, _parquet(tmp_path / "t.parquet", row_group_size=16))
    text = bind(loaded, _csv(tmp_path / "t.csv"))
    x, y = parquet.batch(np.arange(ROWS))
    x_text, y_text = text.batch(np.arange(ROWS))
    assert parquet.classes == text.classes == {"kind": ["cat", "dog"]}
    assert all(np.array_equal(x[name], x_text[name]) for name in ("age", "pixels"))
    assert np.array_equal(y["kind"], y_text["kind"])
    # A Parquet row's id is its row number in its file, from 1; a CSV row's is its line.
    assert parquet.ids[:2] == [f"{tmp_path / 't.parquet'}:1", f"{tmp_path / 't.parquet'}:2"]
    assert text.ids[0] == f"{tmp_path / 't.csv'}:2"


def test_a_folder_of_parquet_shards_is_one_table_in_name_order(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    whole = _columns()
    (tmp_path / "shards").mkdir()
    _parquet(tmp_path / "shards" / "b.parquet", {k: v[25:] for k, v in whole.items()})
    _parquet(tmp_path / "shards" / "a.parquet", {k: v[:25] for k, v in whole.items()})
    examples = bind(loaded, tmp_path / "shards", stream=True)
    ages = np.concatenate([x["age"][:, 0] for x, _, _ in examples.batches(8)])
    assert ages.tolist() == list(range(ROWS))
    assert examples.table.shards == [tmp_path / "shards" / "a.parquet", tmp_path / "shards" / "b.parquet"]


# --- validate --data on Parquet: the schema, not the rows --------------------------------------


def test_validate_checks_a_parquet_schema_without_tensorflow(write_spec, tmp_path):
    spec = write_spec(TABLE_SPEC)
    columns = _columns()
    columns["knd"] = columns.pop("kind")
    table = _parquet(tmp_path / "t.parquet", columns)
    for name in ("tensorflow", "keras"):  # stand-ins that fail on import
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    command = [sys.executable, "-m", "graphspec", "validate", str(spec), "--data", str(table)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[:5] == [
        f"{spec}:10:3: error: table {table} has no column 'kind' for output 'kind'",
        "    kind: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}",
        "    ^~~~",
        "  hint: did you mean 'knd'?",
        "1 error",
    ]
    _parquet(table)
    assert subprocess.run(command, capture_output=True, text=True, env=env).returncode == 0


def test_validate_reads_no_parquet_rows(write_spec, tmp_path, monkeypatch):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _parquet(tmp_path / "t.parquet", row_group_size=8)

    def refuse(*args, **kwargs):
        raise AssertionError("a row group was read")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", refuse)
    monkeypatch.setattr(pq.ParquetFile, "read", refuse)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", refuse)
    assert check_header(loaded, table) == "table"


def _spoiled(kind: str, path: Path) -> Path:
    columns = _columns()
    if kind == "strings":
        columns["p1"] = [str(v) for v in columns["p1"]]
        return _parquet(path, columns)
    if kind == "null":
        columns["p1"] = [None if i == 29 else v for i, v in enumerate(columns["p1"])]
        return _parquet(path, columns, row_group_size=16)
    if kind == "null without statistics":
        columns["p1"] = [None if i == 29 else v for i, v in enumerate(columns["p1"])]
        return _parquet(path, columns, row_group_size=16, write_statistics=False)
    if kind == "empty":
        path.write_bytes(b"")
        return path
    if kind == "no rows":
        pq.write_table(pa.table(columns).slice(0, 0), path)
        return path
    whole = _parquet(path).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # truncated: its footer is gone
    return path


@pytest.mark.parametrize(
    "kind, expected",
    [
        (
            "strings",
            [
                "{spec}:14:23: error: column 'p1' of table {table} holds string values, and input "
                "'pixels' needs numbers",
                '      pixels: {{columns: "p*"}}',
                "                        ^~~~",
                "  hint: convert the column to numbers where the table is written, or read another column",
            ],
        ),
        (
            "null",
            [
                "{table}:30:1: error: row 30 of table {table}, column 'p1': the cell is empty (null)",
                "  hint: fill the cell, or remove the row",
            ],
        ),
        (
            "null without statistics",
            [
                "{table}:30:1: error: row 30 of table {table}, column 'p1': the cell is empty (null)",
                "  hint: fill the cell, or remove the row",
            ],
        ),
        (
            "empty",
            [
                "error: table {table} is empty",
                "  hint: a Parquet file holds a schema and row groups; write it again",
            ],
        ),
        (
            "truncated",
            [
                "error: table {table} is not a readable Parquet file: Parquet magic bytes not found in "
                "footer. Either the file is corrupted or this is not a parquet file.",
                "  hint: the file is damaged or truncated, or not Parquet; write it again",
            ],
        ),
        (
            "no rows",
            ["error: table {table} has no rows", "  hint: a table holds a header and rows"],
        ),
    ],
)
def test_bad_parquet_is_refused_before_training_with_its_place(write_spec, tmp_path, kind, expected):
    spec = write_spec(TABLE_SPEC)
    table = _spoiled(kind, tmp_path / "t.parquet")
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(spec), "--data", str(table), "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[: len(expected)] == [e.format(spec=spec, table=table) for e in expected]
    assert not runs.exists()
    if kind in ("strings", "null", "empty", "truncated"):  # what validate can tell, it tells
        checked = runner.invoke(app, ["validate", str(spec), "--data", str(table)])
        assert checked.exit_code == 2
        assert checked.output.splitlines()[0] == expected[0].format(spec=spec, table=table)


# --- streaming: windows, order, split ----------------------------------------------------------


@pytest.fixture
def small_windows(monkeypatch):
    """Chunks of 5 rows and windows of about 12 rows, so a table of 40 rows is many windows."""
    monkeypatch.setattr(tables, "CHUNK_ROWS", 5)
    # A row of the spec's columns: 4 numbers and a label (`TableStream.row_bytes`).
    monkeypatch.setattr(stream_module, "WINDOW_BYTES", 12 * (8 * 4 + 64 + 16))


def _order(examples, batch_size: int, seed: int, epoch: int) -> list[int]:
    batches = list(examples.batches(batch_size, seed, epoch, shuffle=True))
    assert all(len(x["age"]) == batch_size for x, _, _ in batches[:-1])
    return [int(a) for x, _, _ in batches for a in x["age"][:, 0]]


def test_a_streamed_table_gives_every_row_once_an_epoch_in_an_order_of_seed_and_epoch(
    write_spec, tmp_path, small_windows
):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    examples = bind(loaded, _csv(tmp_path / "t.csv"), stream=True)
    assert len(examples.chunks) == 8 and len(examples) == ROWS
    first, second = _order(examples, 6, 3, 0), _order(examples, 6, 3, 1)
    assert sorted(first) == sorted(second) == list(range(ROWS))
    assert first != second and first != list(range(ROWS))
    assert _order(examples, 6, 3, 0) == first  # the same seed and epoch: the same order
    # The shuffle is bounded: the first window is 3 chunks of 5 rows (at least 12 rows), and the
    # first 12 rows served are drawn from those 3 chunks alone.
    assert len({r // 5 for r in first[:12]}) == 3
    unshuffled = [int(a) for x, _, _ in examples.batches(6) for a in x["age"][:, 0]]
    assert unshuffled == list(range(ROWS))


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_a_text_table_streamed_in_chunks_reads_the_rows_a_whole_read_does(
    write_spec, tmp_path, monkeypatch, kind
):
    import json

    monkeypatch.setattr(tables, "CHUNK_ROWS", 3)  # chunks start mid-file, after quoted newlines
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    columns = _columns(10)
    columns["kind"] = ["cat", "dog", "a\nb", "cat", "x,y", "dog", "cat", "a\nb", "dog", "cat"]
    rows = [dict(zip(columns, r, strict=True)) for r in zip(*columns.values(), strict=True)]
    path = tmp_path / f"t.{kind}"
    if kind == "jsonl":  # blank lines between objects are skipped
        path.write_text(
            "\n".join(json.dumps(r) + ("\n" if i % 4 == 1 else "") for i, r in enumerate(rows)) + "\n"
        )
    else:
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(columns), delimiter="\t" if kind == "tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    whole = bind(loaded, path)
    streamed = bind(loaded, path, stream=True)
    assert len(streamed.chunks) == 4 and streamed.classes == whole.classes
    batches = list(streamed.batches(4))
    x, y = whole.batch(np.arange(10))
    assert np.concatenate([b[0]["age"] for b in batches]).tolist() == x["age"].tolist()
    assert np.concatenate([b[1]["kind"] for b in batches]).tolist() == y["kind"].tolist()
    assert [i for b in batches for i in b[2].strings()] == whole.ids


def test_a_parquet_row_group_past_the_data_limit_is_refused_before_it_is_read(write_spec, tmp_path):
    from graphspec import budget

    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _parquet(tmp_path / "t.parquet", row_group_size=40)
    budget.activate(budget.Budget({"data-bytes": 1_000}))
    try:
        with pytest.raises(SpecErrors) as caught:
            bind(loaded, table, stream=True)
    finally:
        budget.activate(None)
    first = _message(caught.value).splitlines()[0]
    # 5 columns of 40 rows, each counted at least 8 bytes a cell (1,600), or what the footer
    # declares it inflates to when that is more (its page headers too: pyarrow's own figure).
    declared = re.fullmatch(
        rf"{re.escape(str(table))}:1:1: error: row group 0 of table {re.escape(str(table))} \(40 rows; "
        r"([\d,]+) bytes of the columns read\) would go over the limit of 1,000 bytes of \.npz arrays "
        r"and tables held in memory",
        first,
    )
    assert declared and int(declared.group(1).replace(",", "")) >= 1_600, first


def test_a_table_of_one_window_is_ordered_as_a_table_held_whole_was(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    examples = bind(loaded, _parquet(tmp_path / "t.parquet", row_group_size=7), stream=True)
    for epoch in range(3):
        assert _order(examples, 4, 5, epoch) == np.random.default_rng((5, epoch)).permutation(ROWS).tolist()


def test_stream_batches_serve_epoch_after_epoch_in_order_even_when_asked_out_of_turn(
    write_spec, tmp_path, small_windows
):
    from graphspec.keras.streams import StreamBatches

    loaded = graphspec.load(write_spec(TABLE_SPEC))
    examples = bind(loaded, _csv(tmp_path / "t.csv"), stream=True)
    batches = StreamBatches(examples, 6, seed=2, shuffle=True, epochs=3)
    assert (batches.per_epoch, len(batches)) == (7, 21)
    ages = [batches[i][0]["age"][:, 0].tolist() for i in range(len(batches))]
    epochs = [_order(examples, 6, 2, e) for e in range(3)]
    assert [a for batch in ages for a in batch] == [a for epoch in epochs for a in epoch]
    # As Keras asks on JAX and PyTorch: the first batches twice, then one from before.
    assert [batches[i][0]["age"][:, 0].tolist() for i in (0, 1, 0, 1, 2, 9, 3)] == [
        ages[i] for i in (0, 1, 0, 1, 2, 9, 3)
    ]
    resumed = StreamBatches(examples, 6, seed=2, shuffle=True, epochs=3, first_epoch=2)
    assert [resumed[i][0]["age"][:, 0].tolist() for i in range(len(resumed))] == ages[14:]


def test_the_validation_split_is_the_last_rows_of_the_table(write_spec, tmp_path, small_windows):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    examples = bind(loaded, _parquet(tmp_path / "t.parquet", row_group_size=6), stream=True)
    training, validation = examples.split(0.25)
    assert (len(training), len(validation)) == (30, 10)
    assert sorted(_order(training, 4, 1, 0)) == list(range(30))
    assert [int(a) for x, _, _ in validation.batches(4) for a in x["age"][:, 0]] == list(range(30, 40))


def test_a_cell_spoiled_during_training_stops_it_naming_the_file_and_line_kept_to_resume(
    write_spec, tmp_path, small_windows
):
    import keras

    from graphspec.keras.train import DataSource, train

    loaded = graphspec.load(write_spec(TABLE_SPEC), ["train.epochs=3"])
    table = _csv(tmp_path / "t.csv")
    lines = table.read_text().splitlines(keepends=True)

    class Spoil(keras.callbacks.Callback):
        """Once the table is checked and training starts, one cell changes (as many bytes, so
        the chunks still start where the check found them); the windows read after it find it."""

        def on_train_begin(self, logs=None):
            spoiled = [*lines]
            spoiled[20] = lines[20].replace("9.5", "x.5")
            table.write_text("".join(spoiled))

    out = tmp_path / "run"
    with pytest.raises(SpecErrors) as caught:
        train(loaded, DataSource(data=table), out=out, verbose=0, extra_callbacks=[Spoil()])
    assert _message(caught.value).splitlines()[0] == (
        f"{table}:21:1: error: row at line 21 of table {table}, column 'p0': 'x.5' is not a number "
        "(training stopped; the run is kept)"
    )
    assert not out.exists()
    # Fixed, the table resumes the run, which ends at its epoch count.
    table.write_text("".join(lines))
    resumed = runner.invoke(app, ["train", "--resume", str(out), "-q"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "history.json").read_text())["epoch"] == [0, 1, 2]


def test_evaluate_and_predict_stream_a_parquet_table(write_spec, tmp_path):
    spec = write_spec(TABLE_SPEC)
    table = _parquet(tmp_path / "t.parquet", row_group_size=16)
    run = tmp_path / "run"
    assert (
        runner.invoke(app, ["train", str(spec), "--data", str(table), "--out", str(run), "-q"]).exit_code == 0
    )
    scored = runner.invoke(app, ["evaluate", str(run), "--data", str(table), "--json"])
    assert scored.exit_code == 0, scored.output
    assert '"examples": 40' in scored.output
    out = tmp_path / "p.csv"
    assert runner.invoke(app, ["predict", str(run), "--data", str(table), "-o", str(out)]).exit_code == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + ROWS and rows[1].startswith(f"{table}:1,")


# --- real data: scikit-learn's digits as Parquet -----------------------------------------------


def test_the_digits_parquet_table_is_learned(tmp_path):
    from graphspec.keras.train import DataSource, train

    datasets = pytest.importorskip(
        "sklearn.datasets", reason="scikit-learn (the test extra) is not installed"
    )
    digits = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    columns = {f"p{i}": digits.data[order, i].astype(np.int64) for i in range(64)}
    columns["label"] = digits.target[order].astype(np.int64)
    _parquet(tmp_path / "digits.parquet", columns, row_group_size=256)
    loaded = graphspec.load(ROOT / "specs" / "tabular_classifier.yaml", ["train.epochs=8"])
    result = train(loaded, DataSource(data=tmp_path / "digits.parquet"), out=tmp_path / "run", verbose=0)
    assert result.metrics["val_accuracy"] >= 0.9


# --- memory: a table larger than the memory it may take ----------------------------------------

MEMORY_SPEC = """
graphspec: 1
name: wide
params: {features: 64}
inputs:
  x: {shape: ["${features}"]}
layers:
  y: {type: Dense, units: 1, in: x}
outputs:
  y: {loss: mse}
train: {epochs: 1, batch_size: 4096, seed: 0, validation_split: 0.1}
data:
  inputs:
    x: {columns: "f*"}
"""


def _wide_parquet(path: Path, rows: int, features: int = 64) -> int:
    """A Parquet table of `rows` rows of `features` float64 columns and a target, written a row
    group at a time (each value one of 16, so the file is small); its size in memory held whole."""
    rng = np.random.default_rng(0)
    names = [f"f{i:02d}" for i in range(features)] + ["y"]
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 16384):
            count = min(16384, rows - start)
            values = rng.integers(0, 16, size=(len(names), count)).astype(np.float64)
            writer.write_table(pa.table(dict(zip(names, values, strict=True)), schema=schema))
    return rows * len(names) * 8


def test_training_on_a_parquet_table_4x_larger_than_its_memory_margin(
    write_spec, tmp_path, graphspec_peak_mb
):
    spec = write_spec(MEMORY_SPEC)
    small = tmp_path / "small.parquet"
    large = tmp_path / "large.parquet"
    _wide_parquet(small, 16384)
    held = _wide_parquet(large, 500_000)  # 260 MB as float64 arrays
    base = graphspec_peak_mb("train", spec, "--data", small, "--out", tmp_path / "a", "-q")
    peak = graphspec_peak_mb("train", spec, "--data", large, "--out", tmp_path / "b", "-q")
    margin = held / 4 / 2**20
    # The cap is the small run's peak (TensorFlow, the model, a window) plus a quarter of the
    # table: reading the table whole would pass it four times over.
    assert peak <= base + margin, f"peak {peak:.0f} MB, small table's {base:.0f} MB, margin {margin:.0f} MB"
