"""`graphspec predict -o`: the predictions file in each format (graphspec/data/predictions.py),
whole or not at all. No model is needed: the writer is given outputs as predict makes them."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest

from graphspec.data import predictions
from graphspec.errors import SpecErrors

IDS = ["a/0.png", "a/1.png", "b/2.png"]
OUTPUTS = {
    "label": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=np.float32),
    "score": np.array([[0.5], [1.5], [-2.0]], dtype=np.float32),
}
CLASSES = {"label": ["cat", "dog"]}


def test_parquet_has_the_csv_columns_and_values(tmp_path):
    predictions.write(tmp_path / "p.csv", IDS, OUTPUTS, CLASSES)
    predictions.write(tmp_path / "p.parquet", IDS, OUTPUTS, CLASSES)
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    table = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert list(table) == rows[0] == ["id", "label_class", "label[0]", "label[1]", "score"]
    assert table["id"] == IDS
    assert table["label_class"] == ["cat", "dog", "cat"]
    np.testing.assert_array_equal(np.array([table["label[0]"], table["label[1]"]]).T, OUTPUTS["label"])
    np.testing.assert_array_equal(table["score"], OUTPUTS["score"][:, 0])
    # The CSV's cells are the same values, to its seven digits.
    for i, row in enumerate(rows[1:]):
        assert row[:2] == [table["id"][i], table["label_class"][i]]
        parquet_row = [table[name][i] for name in rows[0][2:]]
        np.testing.assert_allclose([float(v) for v in row[2:]], parquet_row, rtol=1e-6)
    schema = pq.read_schema(tmp_path / "p.parquet")
    assert str(schema.field("id").type) == "string"
    assert str(schema.field("label[0]").type) == "float"


def test_pandas_reads_the_parquet_file(tmp_path):
    pandas = pytest.importorskip("pandas", reason="pandas is not installed")
    predictions.write(tmp_path / "p.parquet", IDS, OUTPUTS, CLASSES)
    frame = pandas.read_parquet(tmp_path / "p.parquet")
    assert frame["label_class"].tolist() == ["cat", "dog", "cat"]


def test_parquet_of_an_output_without_classes_has_no_class_column(tmp_path):
    predictions.write(tmp_path / "p.parquet", IDS, {"score": OUTPUTS["score"]}, {})
    assert pq.read_table(tmp_path / "p.parquet").column_names == ["id", "score"]


def test_a_parquet_write_failing_half_way_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "p.parquet"

    def failing(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(SpecErrors, match="No space left on device"):
        predictions.write(target, IDS, OUTPUTS, CLASSES)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file, no folder made for it


def test_a_parquet_write_keeps_the_old_file_until_the_new_one_is_whole(tmp_path, monkeypatch):
    target = tmp_path / "p.parquet"
    predictions.write(target, IDS, OUTPUTS, CLASSES)
    before = target.read_bytes()

    def failing(table, where, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(KeyboardInterrupt):
        predictions.write(target, IDS[:1], {"label": OUTPUTS["label"][:1]}, CLASSES)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


def test_check_output_takes_parquet_and_refuses_other_endings(tmp_path):
    assert predictions.check_output(tmp_path / "p.PARQUET") == tmp_path / "p.PARQUET"
    with pytest.raises(SpecErrors) as caught:
        predictions.check_output(tmp_path / "p.xlsx")
    assert "name a .csv, .parquet or .npz file" in caught.value.diagnostics.render()
