"""Folders of images read through tf.data on TensorFlow (graphspec/keras/image_stream.py): the
same arrays as the Pillow reader gives, the same batches in the same order per (seed, epoch),
a damaged file named, and the Python reader kept where tf.data would not read alike."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import graphspec
from graphspec.data.examples import bind
from graphspec.errors import SpecErrors
from graphspec.keras.files import FileBatches, raising_failure
from graphspec.keras.image_stream import ImageStream, reader_for, reads

SPEC = """
graphspec: 1
name: pictures
inputs:
  image: {shape: [6, 6, 3]}
layers:
  flat: {type: Flatten, in: image}
  label: {type: Dense, units: 2, activation: softmax, in: flat}
outputs:
  label: {loss: sparse_categorical_crossentropy}
train: {epochs: 1, batch_size: 4, seed: 0}
"""


def _kinds(root, size=(13, 17)):
    """One file of every kind tf.data reads, in two classes: PNGs of each 8-bit mode (a palette
    with and without transparency, 2-bit, 1-bit) and greyscale and RGB JPEGs."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    rgba = rng.integers(0, 255, (*size, 4), dtype=np.uint8)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    palette = Image.fromarray(rgb, "RGB").quantize(40)
    Image.fromarray(rgb, "RGB").save(root / "a" / "rgb.png")
    Image.fromarray(rgb[..., 0], "L").save(root / "a" / "grey.png")
    Image.fromarray(rgba, "RGBA").save(root / "a" / "rgba.png")
    Image.fromarray(rgba[..., :2], "LA").save(root / "a" / "la.png")
    palette.save(root / "b" / "palette.png")
    palette.save(root / "b" / "clear.png", transparency=3)
    Image.fromarray(rgb, "RGB").quantize(4).save(root / "b" / "two_bit.png", bits=2)
    Image.fromarray(rgb[..., 0] > 128).save(root / "b" / "one_bit.png")
    Image.fromarray(rgb, "RGB").save(root / "b" / "rgb.jpg", quality=90)
    Image.fromarray(rgb[..., 0], "L").save(root / "b" / "grey.jpg", quality=90)
    return root


@pytest.mark.parametrize(
    ("shape", "image"),
    [
        ("[13, 17, 3]", "{convert: true}"),  # the files' own size: no resizing
        ("[6, 6, 3]", "{convert: true}"),
        ("[6, 6, 1]", "{convert: true, crop: center}"),
        ("[30, 20, 4]", "{convert: true}"),
    ],
)
def test_tf_data_gives_the_arrays_pillow_gives(write_spec, tmp_path, shape, image):
    pics = _kinds(tmp_path / "pics")
    spec = SPEC.replace("[6, 6, 3]", shape) + f"data:\n  inputs:\n    image: {{image: {image}}}\n"
    loaded = graphspec.load(write_spec(spec))
    examples = bind(loaded, pics)
    assert reads(examples)  # every kind above decodes alike
    rows = np.arange(len(examples))
    pillow, labels = FileBatches(examples, 4).read(rows)
    streamed, streamed_labels = ImageStream(examples, 4).read(rows)
    # Exact, JPEGs and resizing included: decode_jpeg's accurate DCT is Pillow's, and both
    # resize as tf.image.resize does.
    assert np.array_equal(pillow["image"], streamed["image"])
    assert np.array_equal(labels["label"], streamed_labels["label"])


def test_a_resized_folder_reads_as_keras_image_dataset_from_directory_reads_it(write_spec, tmp_path):
    import keras

    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (20 + i, 15, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i}.png")
    examples = bind(graphspec.load(write_spec(SPEC)), tmp_path / "pics")
    theirs = keras.utils.image_dataset_from_directory(
        tmp_path / "pics", image_size=(6, 6), batch_size=None, shuffle=False, verbose=False
    )
    expected = np.stack([np.asarray(image) for image, _ in theirs])
    rows = np.arange(len(examples))
    assert np.array_equal(ImageStream(examples, 4).read(rows)[0]["image"], expected)
    assert np.allclose(FileBatches(examples, 4).read(rows)[0]["image"], expected, atol=1e-4)


def test_each_epoch_streams_in_the_order_its_seed_and_number_draw(write_spec, tmp_path):
    # Ten one-colour images: each file's pixel value is its index in the folder.
    for i in range(10):
        folder = tmp_path / "pics" / ("a" if i < 5 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6, 6, 3), i * 20, np.uint8)).save(folder / f"{i}.png")
    examples = bind(graphspec.load(write_spec(SPEC)), tmp_path / "pics")
    streamed = ImageStream(examples, 4, seed=3, shuffle=True, epochs=3)
    batches = [x["image"][:, 0, 0, 0].numpy() / 20 for x, _ in streamed.for_fit()]
    orders = [np.random.default_rng((3, e)).permutation(10) for e in range(3)]
    expected = [order[i : i + 4] for order in orders for i in (0, 4, 8)]  # 4, 4, 2 a epoch
    assert [b.tolist() for b in batches] == [e.tolist() for e in expected]
    python = FileBatches(examples, 4, seed=3, shuffle=True, epochs=3)
    assert [python[i][0]["image"][:, 0, 0, 0].tolist() for i in range(9)] == [
        (b * 20).tolist() for b in batches
    ]
    # Resumed at epoch 2, or a fine-tuning stage's fit starting there: that epoch's batches.
    streamed.first_epoch = 2
    resumed = [x["image"][:, 0, 0, 0].numpy() / 20 for x, _ in streamed.for_fit()]
    assert [b.tolist() for b in resumed] == [e.tolist() for e in expected[6:]]


def test_a_truncated_jpeg_found_mid_stream_is_named(write_spec, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i}.jpg", quality=95)
    bad = tmp_path / "pics" / "b" / "1.jpg"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])  # the header still reads
    examples = bind(graphspec.load(write_spec(SPEC)), tmp_path / "pics")
    streamed = ImageStream(examples, 4, epochs=1)
    with pytest.raises(SpecErrors) as caught, raising_failure(streamed):
        for _ in streamed.for_fit():
            pass
    assert f"image {bad} is damaged or truncated" in caught.value.diagnostics.render()


def test_the_python_reader_is_kept_for_skip_bad_and_for_files_tf_data_reads_otherwise(write_spec, tmp_path):
    pics = _kinds(tmp_path / "pics", size=(6, 6))
    loaded = graphspec.load(write_spec(SPEC + "data:\n  inputs:\n    image: {image: {convert: true}}\n"))
    examples = bind(loaded, pics)
    assert reader_for(examples) is ImageStream
    assert reader_for(examples, skip_bad=3) is FileBatches
    # A GIF (TensorFlow decodes it without its transparency) sends the whole folder to Pillow.
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(pics / "a" / "still.gif")
    assert reader_for(bind(loaded, pics)) is FileBatches


def test_a_damaged_file_early_in_a_long_epoch_is_found_where_tf_data_stopped(write_spec, tmp_path):
    # 300 batches of one: the generator has handed over far fewer when the first one fails.
    rng = np.random.default_rng(0)
    for i in range(300):
        folder = tmp_path / "pics" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    bad = tmp_path / "pics" / "a" / "001.png"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) - 40])  # the header reads; the pixels end early
    examples = bind(graphspec.load(write_spec(SPEC)), tmp_path / "pics")
    streamed = ImageStream(examples, 1, epochs=1)
    with pytest.raises(SpecErrors) as caught, raising_failure(streamed):
        for _ in streamed.for_fit():
            pass
    assert f"image {bad} is damaged or truncated" in caught.value.diagnostics.render()
