"""On JAX and PyTorch, whose trainers ask for a folder's batches one at a time, the next training
batch is read on a thread while one trains: what is read ahead is exactly what would have been
read, and a bad file in it fails when its batch is asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import graphspec
from graphspec.data.examples import bind
from graphspec.errors import SpecErrors
from graphspec.keras.files import FileBatches

SPEC = """
graphspec: 1
name: pictures
inputs:
  image: {shape: [16, 16, 3]}
layers:
  flat: {type: Flatten, in: image}
  label: {type: Dense, units: 2, activation: softmax, in: flat}
outputs:
  label: {loss: sparse_categorical_crossentropy}
"""


@pytest.fixture
def pictures(write_spec, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i}.png")
    return bind(graphspec.load(write_spec(SPEC)), tmp_path / "pics")


def _batches(examples, read_ahead: bool, first_epoch: int = 0) -> FileBatches:
    batches = FileBatches(examples, 4, seed=3, shuffle=True, epochs=3, first_epoch=first_epoch)
    batches.read_ahead = read_ahead
    return batches


def _reads(batches: FileBatches) -> list[list[int]]:
    """The rows of each `read` of `batches`, recorded as they are read."""
    reads: list[list[int]] = []
    read = batches.read
    batches.read = lambda rows: reads.append(sorted(rows.tolist())) or read(rows)
    return reads


def test_the_batches_read_ahead_are_those_read_one_at_a_time(pictures):
    plain, ahead = _batches(pictures, False), _batches(pictures, True)
    assert len(ahead) == 9  # 3 batches an epoch, 3 epochs, each epoch in its own order
    for index in range(len(ahead)):
        (x1, y1), (x2, y2) = plain[index], ahead[index]
        np.testing.assert_array_equal(x1["image"], x2["image"])
        np.testing.assert_array_equal(y1["label"], y2["label"])


def test_the_next_batch_is_read_before_it_is_asked_for_and_not_again(pictures):
    ahead = _batches(pictures, True)
    reads = _reads(ahead)
    rows = [sorted(ahead._rows(i)[3].tolist()) for i in range(3)]
    ahead[0]
    ahead._ahead[1].result()  # batch 1 is being read on the thread; wait for it
    assert reads == [rows[0], rows[1]]
    ahead[1]
    ahead._ahead[1].result()
    assert reads == [rows[0], rows[1], rows[2]]  # batch 1 was not read twice


def test_the_last_batch_reads_nothing_ahead(pictures):
    ahead = _batches(pictures, True)
    reads = _reads(ahead)
    ahead[len(ahead) - 1]
    assert ahead._ahead is None and len(reads) == 1


def test_a_bad_file_read_ahead_fails_when_its_batch_is_asked_for(pictures):
    ahead = _batches(pictures, True)
    bad = Path(ahead.examples.files["image"][0][ahead._rows(1)[3][0]])
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])
    ahead[0]  # batch 0 trains while batch 1, with the damaged file, is read
    with pytest.raises(SpecErrors) as caught:
        ahead[1]
    assert caught.value.diagnostics.errors[0].message.startswith(f"image {bad} is damaged or truncated")
    assert ahead.failure is caught.value


def test_a_new_stage_does_not_take_a_batch_read_ahead_for_another_epoch(pictures):
    ahead = _batches(pictures, True)
    ahead[0]  # batch 1 of epoch 0 read ahead
    ahead.first_epoch = 1  # the next stage's fit goes on from epoch 1
    x, _ = ahead[1]
    expected, _ = _batches(pictures, False, first_epoch=1)[1]
    np.testing.assert_array_equal(x["image"], expected["image"])
