"""`train --skip-bad N` on tables (graphspec/data/tables.py, graphspec/data/stream.py): rows
the scan finds bad are left out of training and recorded, N+1 of them are refused before
training, and a row found bad mid-stream leaves its batch one short, the order kept.

Every table is a few rows written at test time in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.data.examples import bind
from graphspec.data.skips import Skips
from graphspec.errors import SpecErrors

runner = CliRunner()

SPEC = """
graphspec: 1
name: rows
inputs:
  a: {shape: [1]}
  b: {shape: [1]}
layers:
  joined: {type: Concatenate, in: [a, b]}
  y: {type: Dense, units: 1, in: joined}
outputs:
  y: {loss: mse}
train: {epochs: 2, batch_size: 4, seed: 3, validation_split: 0}
"""

ROWS = 12


def _lines(rows: int = ROWS) -> list[str]:
    """A CSV's lines: the header, then row i (at line i + 2) is `i,i % 3,i / 2`."""
    return ["a,b,y"] + [f"{i},{i % 3},{i / 2}" for i in range(rows)]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _bad_csv(path: Path) -> Path:
    """Rows 2 (line 4: a word in a numeric column) and 7 (line 9: ragged) are bad."""
    lines = _lines()
    lines[3] = "2,oops,1.0"
    lines[8] = "7,1"
    return _write(path, lines)


def _ages(stream, epoch: int = 0, batch_size: int = 4) -> list[list[int]]:
    return [[int(a) for a in x["a"][:, 0]] for x, _, _ in stream.batches(batch_size, 3, epoch, True)]


def test_skip_bad_leaves_out_the_table_rows_the_scan_finds_bad_and_records_each_once(write_spec, tmp_path):
    table = _bad_csv(tmp_path / "t.csv")
    run = tmp_path / "run"
    args = ["train", str(write_spec(SPEC)), "--data", str(table), "--out", str(run), "--skip-bad", "2", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipped 2 bad examples (listed in skipped.jsonl)" in result.stdout
    records = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert records == [
        {
            "file": str(table),
            "row": 4,
            "reason": f"row at line 4 of table {table}, column 'b': 'oops' is not a number",
            "epoch": None,
        },
        {
            "file": str(table),
            "row": 9,
            "reason": f"row at line 9 of table {table} has 2 cells; its header has 3 columns",
            "epoch": None,
        },
    ]


def test_the_rows_skipped_are_not_trained_on_the_weights_are_those_of_the_table_without_them(
    write_spec, tmp_path
):
    from graphspec.keras.train import DataSource, train

    def trained(table: Path, skip_bad: int) -> list[np.ndarray]:
        models = []
        train(
            graphspec.load(write_spec(SPEC)),
            DataSource(data=table, skip_bad=skip_bad),
            out=tmp_path / f"run-{table.stem}",
            verbose=0,
            on_built=models.append,
        )
        return models[0].get_weights()

    skipped = trained(_bad_csv(tmp_path / "bad.csv"), skip_bad=2)
    lines = _lines()
    without = trained(_write(tmp_path / "without.csv", lines[:3] + lines[4:8] + lines[9:]), skip_bad=0)
    for mine, theirs in zip(skipped, without, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_an_epoch_reads_every_good_row_once_in_batches_counted_without_the_bad(write_spec, tmp_path):
    from graphspec.keras.streams import StreamBatches

    stream = bind(graphspec.load(write_spec(SPEC)), _bad_csv(tmp_path / "t.csv"), stream=True, skips=Skips(2))
    assert len(stream) == 10
    assert StreamBatches(stream, 4, seed=3, shuffle=True, epochs=2).per_epoch == 3
    ages = _ages(stream)
    assert [len(batch) for batch in ages] == [4, 4, 2]
    assert sorted(a for batch in ages for a in batch) == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11]


def test_one_bad_row_past_skip_bad_is_refused_before_training_naming_the_limit(write_spec, tmp_path):
    table = _bad_csv(tmp_path / "t.csv")
    run = tmp_path / "run"
    args = ["train", str(write_spec(SPEC)), "--data", str(table), "--out", str(run), "--skip-bad", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"{table}:9:1: error: {table}:9 is bad example 2, past `--skip-bad 1`: row at line 9 of table "
        f"{table} has 2 cells; its header has 3 columns\n"
        f"  hint: fix or remove the bad examples (found before it: {table}:4), or allow more with "
        "--skip-bad\n"
        "1 error\n"
    )
    assert not run.exists() and not (tmp_path / ".run.partial").exists()


def test_parquet_rows_with_a_null_cell_are_skipped_each_once(write_spec, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    a = [float(i) for i in range(ROWS)]
    b = [float(i % 3) for i in range(ROWS)]
    a[5], b[5], b[9] = None, None, None  # row 6 has two nulls: one bad example
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": a, "b": b, "y": [i / 2 for i in range(ROWS)]}), table, row_group_size=4)
    skips = Skips(2)
    stream = bind(graphspec.load(write_spec(SPEC)), table, stream=True, skips=skips)
    assert [(r["row"], r["reason"]) for r in skips.records] == [
        (6, f"row 6 of table {table}, column 'a': the cell is empty (null)"),
        (10, f"row 10 of table {table}, column 'b': the cell is empty (null)"),
    ]
    assert sorted(a for batch in _ages(stream) for a in batch) == [0, 1, 2, 3, 4, 6, 7, 8, 10, 11]


def test_json_lines_rows_that_are_not_json_or_not_numbers_are_skipped(write_spec, tmp_path):
    lines = [json.dumps({"a": i, "b": i % 3, "y": i / 2}) for i in range(ROWS)]
    lines[4] = '{"a": 4, "b": '
    lines[6] = json.dumps({"a": 6, "b": "six", "y": 3.0})
    table = _write(tmp_path / "t.jsonl", lines)
    skips = Skips(2)
    stream = bind(graphspec.load(write_spec(SPEC)), table, stream=True, skips=skips)
    assert [(r["row"], r["reason"]) for r in skips.records] == [
        (5, f"line 5 of table {table} is not JSON: Expecting value"),
        (7, f"row at line 7 of table {table}, column 'b': 'six' is not a number"),
    ]
    assert sorted(a for batch in _ages(stream) for a in batch) == [0, 1, 2, 3, 5, 7, 8, 9, 10, 11]


def _spoil(table: Path) -> None:
    """Row 5's cell `b` (line 7) becomes a word of as many bytes: the chunks still start where
    the scan found them."""
    lines = table.read_text().splitlines()
    lines[6] = lines[6].replace(",2,", ",x,")
    _write(table, lines)


def test_a_row_found_bad_mid_stream_leaves_its_batch_one_short_and_the_order_kept(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(SPEC))
    table = _write(tmp_path / "t.csv", _lines())
    planned = _ages(bind(loaded, table, stream=True), epoch=1)
    skips = Skips(1)
    stream = bind(loaded, table, stream=True, skips=skips)
    _spoil(table)
    ages = _ages(stream, epoch=1)
    assert ages == [[a for a in batch if a != 5] for batch in planned]
    assert [len(batch) for batch in ages].count(3) == 1
    assert skips.records == [
        {
            "file": str(table),
            "row": 7,
            "reason": f"row at line 7 of table {table}, column 'b': 'x' is not a number",
            "epoch": 1,
        }
    ]


def test_a_resumed_run_keeps_a_row_it_skipped_mid_stream_in_its_order(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(SPEC))
    table = _write(tmp_path / "t.csv", _lines())
    running = Skips(1)
    uninterrupted = bind(loaded, table, stream=True, skips=running)
    _spoil(table)
    expected = [_ages(uninterrupted, epoch) for epoch in (0, 1)]
    running.attach(tmp_path)  # what the run's folder records
    resumed = Skips(1)
    resumed.recall(tmp_path)
    stream = bind(loaded, table, stream=True, skips=resumed)
    assert len(stream) == ROWS  # not left out by the scan: it keeps its place
    assert [_ages(stream, epoch) for epoch in (0, 1)] == expected
    assert len(resumed) == 1


def test_a_row_spoiled_mid_run_is_skipped_and_the_run_ends_with_every_epoch(write_spec, tmp_path):
    import keras

    from graphspec.keras.train import DataSource, train

    table = _write(tmp_path / "t.csv", _lines())

    class Spoil(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _spoil(table)

    run = tmp_path / "run"
    loaded = graphspec.load(write_spec(SPEC))
    # Two windows' worth of rows would be read again each epoch; one window is kept once read.
    result = train(loaded, DataSource(data=table, skip_bad=1), out=run, verbose=0, extra_callbacks=[Spoil()])
    assert result.skipped == 1
    assert json.loads((run / "history.json").read_text())["epoch"] == [0, 1]
    (record,) = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert (record["row"], record["epoch"]) == (7, 0)


def test_skip_bad_still_refuses_a_table_missing_a_column(write_spec, tmp_path):
    table = _write(tmp_path / "t.csv", [line.rsplit(",", 1)[0] for line in _lines()])
    with pytest.raises(SpecErrors, match=f"table {table} has no column 'y' for output 'y'"):
        bind(graphspec.load(write_spec(SPEC)), table, stream=True, skips=Skips(5))


# --- validation and test tables: the same N, counted over the run -----------------------------


def _run(write_spec, tmp_path, skip_bad: int, *extra: str):
    table = _bad_csv(tmp_path / "t.csv")
    run = tmp_path / f"run-{skip_bad}"
    args = ["train", str(write_spec(SPEC)), "--data", str(table), *extra]
    return runner.invoke(app, [*args, "--out", str(run), "--skip-bad", str(skip_bad), "-q"]), run


def test_bad_rows_of_val_and_test_tables_are_skipped_against_the_same_limit(write_spec, tmp_path):
    lines = _lines()
    lines[5] = "4,four,2.0"
    val = _write(tmp_path / "val.csv", lines)
    test = _write(tmp_path / "test.csv", lines)
    result, run = _run(write_spec, tmp_path, 4, "--val-data", str(val), "--test-data", str(test))
    assert result.exit_code == 0, result.output
    assert "skipped 4 bad examples (listed in skipped.jsonl)" in result.stdout
    records = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert [(Path(r["file"]).name, r["row"]) for r in records] == [
        ("t.csv", 4),
        ("t.csv", 9),
        ("val.csv", 6),
        ("test.csv", 6),
    ]
    assert "loss" in json.loads((run / "test_metrics.json").read_text())


def test_a_bad_val_row_past_the_limit_the_training_rows_used_is_refused_before_training(write_spec, tmp_path):
    lines = _lines()
    lines[5] = "4,four,2.0"
    val = _write(tmp_path / "val.csv", lines)
    result, run = _run(write_spec, tmp_path, 2, "--val-data", str(val))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[0] == (
        f"{val}:6:1: error: {val}:6 is bad example 3, past `--skip-bad 2`: row at line 6 of table {val}, "
        "column 'b': 'four' is not a number"
    )
    assert not run.exists()


# --- evaluate --skip-bad -----------------------------------------------------------------------


def test_evaluate_skip_bad_scores_the_good_rows_and_lists_the_bad(write_spec, tmp_path):
    run = tmp_path / "run"
    clean = _write(tmp_path / "clean.csv", _lines())
    args = ["train", str(write_spec(SPEC)), "--data", str(clean), "--out", str(run), "--epochs", "1", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    table = _bad_csv(tmp_path / "t.csv")
    scored = runner.invoke(app, ["evaluate", str(run), "--data", str(table), "--skip-bad", "2", "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["examples"] == 10
    assert report["skipped"] == [
        {
            "file": str(table),
            "row": 4,
            "reason": f"row at line 4 of table {table}, column 'b': 'oops' is not a number",
        },
        {
            "file": str(table),
            "row": 9,
            "reason": f"row at line 9 of table {table} has 2 cells; its header has 3 columns",
        },
    ]
    lines = _lines()
    without = _write(tmp_path / "without.csv", lines[:3] + lines[4:8] + lines[9:])
    expected = json.loads(runner.invoke(app, ["evaluate", str(run), "--data", str(without), "--json"]).stdout)
    assert report["metrics"] == pytest.approx(expected["metrics"])
    text = runner.invoke(app, ["evaluate", str(run), "--data", str(table), "--skip-bad", "2"])
    assert text.stdout.splitlines()[1:] == [
        "skipped 2 bad examples:",
        f"  {table}:4: row at line 4 of table {table}, column 'b': 'oops' is not a number",
        f"  {table}:9: row at line 9 of table {table} has 2 cells; its header has 3 columns",
    ]
    refused = runner.invoke(app, ["evaluate", str(run), "--data", str(table), "--skip-bad", "1"])
    assert refused.exit_code == 2
    assert f"{table}:9 is bad example 2, past `--skip-bad 1`" in refused.stderr


# --- predict --skip-bad ------------------------------------------------------------------------


def test_predict_skip_bad_writes_no_row_for_a_bad_row_and_lists_it(write_spec, tmp_path):
    run = tmp_path / "run"
    clean = _write(tmp_path / "clean.csv", _lines())
    args = ["train", str(write_spec(SPEC)), "--data", str(clean), "--out", str(run), "--epochs", "1", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    table, out = _bad_csv(tmp_path / "t.csv"), tmp_path / "p.csv"
    result = runner.invoke(
        app, ["predict", str(run), "--data", str(table), "-o", str(out), "--skip-bad", "2"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"10 predictions written to {out}",
        "skipped 2 bad examples:",
        f"  {table}:4: row at line 4 of table {table}, column 'b': 'oops' is not a number",
        f"  {table}:9: row at line 9 of table {table} has 2 cells; its header has 3 columns",
    ]
    written = out.read_text().splitlines()
    # The good rows keep the ids of their lines in the table: lines 4 and 9 have none.
    assert [line.split(",")[0] for line in written[1:]] == [
        f"{table}:{line}" for line in (2, 3, 5, 6, 7, 8, 10, 11, 12, 13)
    ]
    lines = _lines()
    without, expected = (
        _write(tmp_path / "without.csv", lines[:3] + lines[4:8] + lines[9:]),
        tmp_path / "e.csv",
    )
    assert (
        runner.invoke(app, ["predict", str(run), "--data", str(without), "-o", str(expected)]).exit_code == 0
    )
    assert [line.split(",")[1:] for line in written] == [
        line.split(",")[1:] for line in expected.read_text().splitlines()
    ]
    refused = runner.invoke(app, ["predict", str(run), "--data", str(table), "-o", str(tmp_path / "r.csv")])
    assert refused.exit_code == 2
    assert not (tmp_path / "r.csv").exists()
