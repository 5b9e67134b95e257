"""Image files as input arrays: decoded with Pillow, cropped, resized, with a fixed channel count.

`probe` reads a file's header alone (format, size, channels), so that a folder is checked before
training: a file that is not an image, has more pixels than the `image-pixels` limit, or has
another channel count than the input takes, is refused naming it. `decode` reads the pixels;
a file damaged past its header (truncated) is found there, mid-stream, and named the same way.
Pixel values stay 0-255 as Keras's image loaders give them (rescale in the spec, with a
Rescaling layer). Resizing is `tf.image.resize`'s bilinear (half-pixel centres, no antialiasing),
as Keras's `image_dataset_from_directory` resizes, done here in NumPy: the `tf.data` reader of
`graphspec.keras.image_stream` decodes the same files with TensorFlow's own ops, and both give
the same arrays. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphspec import budget
from graphspec.errors import SpecErrors

# Channels of each Pillow mode as an input sees them; palette images are their colours.
_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 2, "La": 2, "P": 3, "RGB": 3, "YCbCr": 3}
_CHANNELS.update({"CMYK": 3, "LAB": 3, "HSV": 3, "PA": 4, "RGBA": 4, "RGBa": 4})
_MODE = {1: "L", 3: "RGB", 4: "RGBA"}
# The files TensorFlow's decoders (decode_png; decode_jpeg with its accurate DCT) give exactly
# the pixels Pillow gives, as `graphspec.keras.image_stream` converts their channels: 8-bit PNGs
# and greyscale or RGB JPEGs. A palette PNG decodes to its colours, with alpha where it has
# transparency, as Pillow's conversion does; a greyscale or RGB PNG with a transparent colour
# would not (TensorFlow gives it an alpha channel, Pillow none).
_TENSORFLOW_MODES = {"PNG": {"1", "L", "LA", "RGB", "RGBA", "P"}, "JPEG": {"L", "RGB"}}


@dataclass(frozen=True)
class ImageShape:
    """What every image of an input becomes: height, width, channels, and how it gets there."""

    height: int
    width: int
    channels: int
    crop: str | None = None
    convert: bool = False


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise SpecErrors.single(
            f"image {path} cannot be read: {_reason(exc)}",
            hint="remove or replace the file; graphspec reads JPEG, PNG, BMP and GIF",
        ) from None


def _reason(exc: Exception) -> str:
    text = str(exc).split(" '")[0] if "cannot identify image file" in str(exc) else str(exc)
    return text or type(exc).__name__


def channels_of(image) -> int:
    """How many channels an opened image has, as an input would see them."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        return 4
    return _CHANNELS.get(mode, 3)


@dataclass(frozen=True)
class ImageReader:
    """Reads one input's image files (`decode`), and says whether TensorFlow's decoders would
    give every file of its folder the same pixels (`tensorflow_alike`), so that a `tf.data`
    pipeline may read them instead."""

    shape: ImageShape
    input_name: str
    tensorflow_alike: bool = False

    def __call__(self, path: Path) -> np.ndarray:
        return decode(path, self.shape, self.input_name)


def probe(path: Path, shape: ImageShape, input_name: str) -> bool:
    """Check `path`'s header against `shape`: it is an image, its pixels are within the
    `image-pixels` limit, and it has the channels the input takes (unless converting). Returns
    whether TensorFlow's decoders give its pixels as Pillow does (an 8-bit PNG, a greyscale or
    RGB JPEG)."""
    with _open(path) as image:
        width, height = image.size
        budget.current().check("image-pixels", width * height, None, f"image {path} ({width}x{height})")
        _check_channels(path, image, shape, input_name)
        return _tensorflow_alike(image)


def _tensorflow_alike(image) -> bool:
    if image.mode not in _TENSORFLOW_MODES.get(image.format, ()):
        return False
    if "transparency" in image.info and image.mode != "P":
        return False
    # A 16-bit PNG is "I;16B", "RGB;16B", ...: TensorFlow scales it to 8 bits, Pillow does not.
    return bool(image.tile) and "16" not in repr(image.tile[0].args)


def _check_channels(path: Path, image, shape: ImageShape, input_name: str) -> None:
    found = channels_of(image)
    if found != shape.channels and not shape.convert:
        raise SpecErrors.single(
            f"image {path} has {found} channel{'s' * (found != 1)} ({image.mode}); input '{input_name}' "
            f"takes {shape.channels}",
            hint=f"set data: inputs: {input_name}: image: {{convert: true}} to convert every image "
            f"to {shape.channels} channels, or fix the file",
        )


def decode(path: Path, shape: ImageShape, input_name: str) -> np.ndarray:
    """The pixels of `path` as float32 (height, width, channels), as `shape` says."""
    with _open(path) as image:
        _check_channels(path, image, shape, input_name)
        try:
            image.seek(0)  # the first frame of an animated GIF
            image.load()
            picture = image.convert(_MODE[shape.channels]) if image.mode != _MODE[shape.channels] else image
            if shape.crop == "center":
                picture = _center_crop(picture, shape.width / shape.height)
            pixels = np.asarray(picture, dtype=np.float32)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SpecErrors.single(
                f"image {path} is damaged or truncated: {_reason(exc)}", hint="remove or replace the file"
            ) from None
    pixels = pixels.reshape(*pixels.shape[:2], shape.channels)
    if pixels.shape[:2] != (shape.height, shape.width):
        pixels = resize_bilinear(pixels, shape.height, shape.width)
    return pixels


def resize_bilinear(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """`pixels` (float32, height x width x channels) resized as `tf.image.resize(..., "bilinear")`
    resizes (TensorFlow's ResizeBilinear, half-pixel centres, no antialiasing), in float32 and
    in its order of operations, so that the two agree to the last bit or nearly."""
    top, bottom, y_lerp = _weights(pixels.shape[0], height)
    left, right, x_lerp = _weights(pixels.shape[1], width)
    x_lerp = x_lerp[None, :, None]
    upper, lower = pixels[top], pixels[bottom]
    top_row = upper[:, left] + (upper[:, right] - upper[:, left]) * x_lerp
    bottom_row = lower[:, left] + (lower[:, right] - lower[:, left]) * x_lerp
    return (top_row + (bottom_row - top_row) * y_lerp[:, None, None]).astype(np.float32)


def _weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source rows (or columns) below and above each output one, and the weight of the
    one above, as TensorFlow's `compute_interpolation_weights` computes them."""
    scale = np.float32(in_size) / np.float32(out_size)
    centre = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centre)
    below = np.maximum(floor, 0).astype(np.int64)
    above = np.minimum(np.ceil(centre), in_size - 1).astype(np.int64)
    return below, above, (centre - floor).astype(np.float32)


def _center_crop(image, aspect: float):
    width, height = image.size
    if width / height > aspect:
        new = round(height * aspect)
        left = (width - new) // 2
        return image.crop((left, 0, left + new, height))
    new = round(width / aspect)
    top = (height - new) // 2
    return image.crop((0, top, width, top + new))
