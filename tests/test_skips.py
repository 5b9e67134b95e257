"""The policy for bad examples found mid-stream (`graphspec.data.skips`): counted once each,
recorded in the run, and refused past the limit. No TensorFlow."""

from __future__ import annotations

import json

import pytest

from graphspec.data.skips import SKIPPED_FILE, Skips, checked_limit
from graphspec.errors import Location, SpecErrors


def _bad(name: str) -> SpecErrors:
    return SpecErrors.single(f"image {name} is damaged or truncated", hint="remove or replace the file")


def test_without_a_limit_the_first_bad_example_raises_its_own_error():
    error = _bad("a.png")
    with pytest.raises(SpecErrors) as caught:
        Skips(0).skip("a.png", error, epoch=0)
    assert caught.value is error


def test_an_example_found_bad_again_is_counted_once():
    skips = Skips(2)
    for epoch in (0, 1, 2):
        skips.skip("a.png", _bad("a.png"), epoch=epoch)
    assert len(skips) == 1
    assert ("a.png", None) in skips
    assert skips.records == [
        {"file": "a.png", "row": None, "reason": "image a.png is damaged or truncated", "epoch": 0}
    ]


def test_the_example_past_the_limit_stops_naming_the_limit_and_keeps_its_place():
    skips = Skips(1)
    skips.skip("a.png", _bad("a.png"), epoch=0)
    located = SpecErrors.single("not a number", Location("t.csv", 7, 1))
    with pytest.raises(SpecErrors) as caught:
        skips.skip("t.csv", located, epoch=1, row=7)
    diagnostic = caught.value.diagnostics.errors[0]
    assert diagnostic.message == "t.csv:7 is bad example 2, past `--skip-bad 1`: not a number"
    assert diagnostic.location == Location("t.csv", 7, 1)
    assert len(skips) == 1


def test_skips_are_written_one_json_line_each_once_a_run_directory_is_attached(tmp_path):
    skips = Skips(3)
    skips.skip("a.png", _bad("a.png"), epoch=0)  # found before the run directory exists
    skips.attach(tmp_path)
    skips.skip("b.png", _bad("b.png"), epoch=1)
    lines = (tmp_path / SKIPPED_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"file": "a.png", "row": None, "reason": "image a.png is damaged or truncated", "epoch": 0},
        {"file": "b.png", "row": None, "reason": "image b.png is damaged or truncated", "epoch": 1},
    ]


def test_a_resumed_run_counts_the_skips_its_folder_records_toward_the_limit(tmp_path):
    first = Skips(2)
    first.attach(tmp_path)
    first.skip("a.png", _bad("a.png"), epoch=0)
    first.skip("b.png", _bad("b.png"), epoch=0)
    resumed = Skips(2)
    resumed.attach(tmp_path)
    resumed.skip("a.png", _bad("a.png"), epoch=2)  # the same one again: not counted
    with pytest.raises(SpecErrors, match="bad example 3, past `--skip-bad 2`"):
        resumed.skip("c.png", _bad("c.png"), epoch=2)


def test_a_damaged_skipped_file_is_refused_at_its_line(tmp_path):
    (tmp_path / SKIPPED_FILE).write_text('{"file": "a.png", "row": null}\n[1]\n')
    with pytest.raises(SpecErrors, match="skipped.jsonl is damaged at line 2"):
        Skips(1).attach(tmp_path)


@pytest.mark.parametrize("limit", [-1, 1.5, "3", True])
def test_the_limit_is_a_whole_number_zero_or_more(limit):
    with pytest.raises(SpecErrors, match="`--skip-bad` takes how many bad examples may be skipped"):
        checked_limit(limit)
