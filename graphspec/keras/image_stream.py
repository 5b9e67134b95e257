"""A folder of images read through `tf.data`, on the TensorFlow backend.

`ImageStream` is `FileBatches` (the same examples, the same batches, each epoch in the order
drawn from the run's seed and the epoch's number) whose `for_fit()` is a `tf.data` pipeline: a
generator hands over each batch's example indices, and TensorFlow reads, decodes, crops and
resizes the files in parallel (`map(num_parallel_calls=AUTOTUNE)`) while the previous batches
train (`prefetch(AUTOTUNE)`), with no Python per image. The arrays are those Pillow gives
(`graphspec.data.images.decode`) bit for bit: PNGs through `decode_png`, JPEGs through
`decode_jpeg` with its accurate DCT (the fast one, which `decode_image` and Keras's own loader
use, differs from Pillow by up to 9 levels), channels converted as Pillow converts them, resized
as `tf.image.resize` resizes, which the Pillow path does too. A folder holding another kind of
image (BMP, GIF, 16-bit PNG, CMYK JPEG) is read by `FileBatches`, whose Python reader runs on
every backend; so are folders on JAX and PyTorch, and runs given `--skip-bad`.

A file found damaged mid-stream (truncated past its header) fails inside TensorFlow, which does
not say which file; `failure_for` finds it among the batches handed over last and gives
graphspec's error naming it, which `files.raising_failure` raises in place of TensorFlow's.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

import keras
import numpy as np

from graphspec.data import images
from graphspec.data.examples import Examples
from graphspec.errors import SpecErrors
from graphspec.keras.files import FileBatches

# Batches whose indices are kept for finding a damaged file: more than tf.data reads ahead
# (its prefetch buffer and the examples being decoded).
_RECENT = 128


def reads(examples: Any, skip_bad: int = 0) -> bool:
    """Whether `examples` are read through `tf.data` (`ImageStream`): a folder of images that
    TensorFlow decodes as Pillow does, on the TensorFlow backend, with no bad files to skip."""
    if keras.backend.backend() != "tensorflow" or skip_bad > 0:
        return False
    if not isinstance(examples, Examples) or examples.arrays or len(examples.files) != 1:
        return False
    (_, reader) = next(iter(examples.files.values()))
    return isinstance(reader, images.ImageReader) and reader.tensorflow_alike


def reader_for(examples: Any, skip_bad: int = 0) -> type[FileBatches]:
    """The reader of the examples of a folder: `ImageStream` where `reads` says so, else
    `FileBatches`."""
    return ImageStream if reads(examples, skip_bad) else FileBatches


class ImageStream(FileBatches):
    """`FileBatches` of a folder of images whose `for_fit()` is a `tf.data.Dataset` and whose
    batches, asked for by index, are decoded by TensorFlow too (so a validation sample and an
    adapted layer see what training sees)."""

    def __init__(self, examples: Examples, *args: Any, **kwargs: Any):
        super().__init__(examples, *args, **kwargs)
        ((self.input_name, (self.paths, reader)),) = examples.files.items()
        self.shape: images.ImageShape = reader.shape
        self._recent: deque[np.ndarray] = deque(maxlen=_RECENT)
        self._tensors: tuple[Any, dict[str, Any]] | None = None

    def for_fit(self) -> Any:
        """What `fit` reads: the batches of epochs `first_epoch` (as it is when an iteration
        starts: each fit's) to `epochs - 1`, as a `tf.data.Dataset`."""
        import tensorflow as tf

        size = self.batch_size
        whole = self.per_epoch * size

        def indices() -> Any:
            # Each epoch's order is padded to whole batches with its own first examples, so
            # that tf.data's batches end where the epoch ends; `_trimmed` drops the padding from
            # the last batch. (A padded example is decoded for nothing: fewer than a batch an
            # epoch, cheaper than a condition on every example.)
            # Handed over a batch at a time, so that the batches handed over last are those
            # tf.data is reading (`failure_for`).
            for epoch in range(self.first_epoch, self.epochs):
                order = self.order_of(epoch)
                padded = np.resize(order, whole)
                kept = np.arange(whole) < len(order)
                for start in range(0, whole, size):
                    batch = padded[start : start + size]
                    self._recent.append(batch)
                    yield batch, kept[start : start + size]

        signature = (tf.TensorSpec((size,), tf.int64), tf.TensorSpec((size,), tf.bool))
        dataset = tf.data.Dataset.from_generator(indices, output_signature=signature).unbatch()
        dataset = dataset.map(self._element, num_parallel_calls=tf.data.AUTOTUNE).batch(size)
        dataset = dataset.map(self._trimmed if whole != len(self.examples) else self._whole)
        if self.epochs == 1:
            # Validation and scoring read it to its end: told its length, Keras does not run off
            # the end and warn.
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(self)))
        return dataset.prefetch(tf.data.AUTOTUNE)

    def read(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and targets of the examples at `rows`, decoded by TensorFlow."""
        import tensorflow as tf

        rows = np.asarray(rows, dtype=np.int64)
        self._recent.append(rows)
        dataset = (
            tf.data.Dataset.from_tensor_slices((rows, np.ones(len(rows), bool)))
            .map(self._element, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(len(rows))
            .map(self._whole)
        )
        try:
            x, y = next(iter(dataset))
        except tf.errors.OpError as exc:
            raise self.failure_for(exc) or exc from None
        return {n: v.numpy() for n, v in x.items()}, {n: v.numpy() for n, v in y.items()}

    def failure_for(self, error: BaseException) -> SpecErrors | None:
        """graphspec's error for `error`, a failure of `fit` or of a read: the damaged file
        among the batches handed over last, named, or None when none of them is damaged."""
        if self.failure is not None:
            return self.failure
        import tensorflow as tf

        if not isinstance(error, tf.errors.OpError):
            return None
        checked: set[int] = set()
        for batch in list(self._recent):  # in the order tf.data read them: the first bad one
            for index in batch.tolist():
                if index in checked:
                    continue
                checked.add(index)
                path = self.paths[index]
                try:
                    decode_file(tf.constant(str(path)), self.shape)
                except tf.errors.OpError as exc:
                    self.failure = _damaged(path, self.shape, self.input_name, exc)
                    return self.failure
        return None

    def _constants(self) -> tuple[Any, dict[str, Any]]:
        if self._tensors is None:
            import tensorflow as tf

            # Made eagerly, outside the map function being traced, so every dataset (fit's,
            # validation's, a read's) captures the same tensors.
            with tf.init_scope():
                paths = tf.constant([str(p) for p in self.paths])
                targets = {n: tf.constant(v) for n, v in self.examples.targets.items()}
            self._tensors = (paths, targets)
        return self._tensors

    def _element(self, index: Any, kept: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
        import tensorflow as tf

        paths, targets = self._constants()
        image = decode_file(tf.gather(paths, index), self.shape)
        return {self.input_name: image}, {n: tf.gather(t, index) for n, t in targets.items()}, kept

    def _trimmed(self, x: dict[str, Any], y: dict[str, Any], kept: Any) -> tuple[dict, dict]:
        import tensorflow as tf

        x = {n: tf.boolean_mask(v, kept) for n, v in x.items()}
        y = {n: tf.boolean_mask(v, kept) for n, v in y.items()}
        return self._whole(x, y, tf.boolean_mask(kept, kept))

    def _whole(self, x: dict[str, Any], y: dict[str, Any], kept: Any) -> tuple[dict, dict]:
        import tensorflow as tf

        count = tf.shape(kept)[0]
        return x, {**y, **{n: tf.zeros((count,), tf.float32) for n in self.targetless}}


def decode_file(path: Any, shape: images.ImageShape) -> Any:
    """The pixels of the image file at `path` (a string tensor) as float32 (height, width,
    channels), as `shape` says and as `images.decode` gives them: TensorFlow ops, for a
    `tf.data` map or eager."""
    import tensorflow as tf

    contents = tf.io.read_file(path)
    pixels = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=0, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(contents, channels=0),
    )
    if shape.convert:
        # Without `convert`, every file was found to have the input's channels (`images.probe`),
        # as TensorFlow decodes them too.
        pixels = _converted(pixels, shape.channels)
    if shape.crop == "center":
        pixels = _center_crop(pixels, shape.width / shape.height)
    size = tf.shape(pixels)[:2]
    pixels = tf.cond(
        tf.reduce_all(size == (shape.height, shape.width)),
        lambda: tf.cast(pixels, tf.float32),
        lambda: tf.image.resize(pixels, (shape.height, shape.width), method="bilinear"),
    )
    return tf.ensure_shape(pixels, (shape.height, shape.width, shape.channels))


def _converted(pixels: Any, channels: int) -> Any:
    """`pixels` (uint8, 1 to 4 channels as decoded) with `channels` channels, as Pillow's
    `convert` makes them: grey to colour repeats the grey, colour to grey is ITU-R 601-2 luma
    in Pillow's integers, alpha is dropped or added opaque."""
    import tensorflow as tf

    def grey(colour: Any) -> Any:
        rgb = tf.cast(colour[..., :3], tf.int32)
        luma = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
        return tf.cast(tf.bitwise.right_shift(luma, 16), tf.uint8)[..., None]

    def opaque(like: Any) -> Any:
        return tf.fill(tf.concat([tf.shape(like)[:2], [1]], 0), tf.constant(255, tf.uint8))

    def wanted(one: Any, alpha: Any, colour: Any) -> Any:
        if channels == 1:
            return one
        if channels == 3:
            return colour
        return tf.concat([colour, alpha], -1)

    branches = [
        lambda: wanted(pixels, opaque(pixels), tf.tile(pixels, (1, 1, 3))),  # L
        lambda: wanted(pixels[..., :1], pixels[..., 1:], tf.tile(pixels[..., :1], (1, 1, 3))),  # LA
        lambda: wanted(grey(pixels), opaque(pixels), pixels),  # RGB
        lambda: wanted(grey(pixels), pixels[..., 3:], pixels[..., :3]),  # RGBA
    ]
    return tf.switch_case(tf.shape(pixels)[-1] - 1, branches)


def _center_crop(pixels: Any, aspect: float) -> Any:
    """The centre of `pixels` of aspect (width / height) `aspect`, cut as `images._center_crop`
    cuts it (the same float64 arithmetic and rounding, half to even)."""
    import tensorflow as tf

    height, width = tf.shape(pixels)[0], tf.shape(pixels)[1]
    high, wide = tf.cast(height, tf.float64), tf.cast(width, tf.float64)

    def columns() -> Any:
        new = tf.cast(tf.round(high * aspect), tf.int32)
        left = (width - new) // 2
        return pixels[:, left : left + new]

    def rows() -> Any:
        new = tf.cast(tf.round(wide / aspect), tf.int32)
        top = (height - new) // 2
        return pixels[top : top + new]

    return tf.cond(wide / high > aspect, columns, rows)


def _damaged(path: Path, shape: images.ImageShape, input_name: str, error: Any) -> SpecErrors:
    """The error naming `path`, which TensorFlow failed to decode: Pillow's words for it when
    Pillow fails too (the error the Python reader gives), else TensorFlow's."""
    try:
        images.decode(path, shape, input_name)
    except SpecErrors as exc:
        return exc
    # "{{function_node ...}} Invalid PNG data, size 2994 [Op:DecodeImage]": the middle part.
    reason = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", str(error.message)).strip() or type(error).__name__
    return SpecErrors.single(
        f"image {path} is damaged or truncated: {reason}", hint="remove or replace the file"
    )
