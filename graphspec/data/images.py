"""Image files as input arrays: decoded with Pillow, cropped, resized, with a fixed channel count.

`probe` reads a file's header alone (format, size, channels), so that a folder is checked before
training: a file that is not an image, has more pixels than the `image-pixels` limit, or has
another channel count than the input takes, is refused naming it. `decode` reads the pixels;
a file damaged past its header (truncated) is found there, mid-stream, and named the same way.
Pixel values stay 0-255 as Keras's image loaders give them (rescale in the spec, with a
Rescaling layer). No TensorFlow here.
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


def probe(path: Path, shape: ImageShape, input_name: str) -> None:
    """Check `path`'s header against `shape`: it is an image, its pixels are within the
    `elements` limit, and it has the channels the input takes (unless converting)."""
    with _open(path) as image:
        width, height = image.size
        budget.current().check("image-pixels", width * height, None, f"image {path} ({width}x{height})")
        _check_channels(path, image, shape, input_name)


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
    from PIL import Image

    with _open(path) as image:
        _check_channels(path, image, shape, input_name)
        try:
            image.seek(0)  # the first frame of an animated GIF
            image.load()
            picture = image.convert(_MODE[shape.channels]) if image.mode != _MODE[shape.channels] else image
            if shape.crop == "center":
                picture = _center_crop(picture, shape.width / shape.height)
            if picture.size != (shape.width, shape.height):
                picture = picture.resize((shape.width, shape.height), Image.Resampling.BILINEAR)
            pixels = np.asarray(picture, dtype=np.float32)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SpecErrors.single(
                f"image {path} is damaged or truncated: {_reason(exc)}", hint="remove or replace the file"
            ) from None
    return pixels.reshape(shape.height, shape.width, shape.channels)


def _center_crop(image, aspect: float):
    width, height = image.size
    if width / height > aspect:
        new = round(height * aspect)
        left = (width - new) // 2
        return image.crop((left, 0, left + new, height))
    new = round(width / aspect)
    top = (height - new) // 2
    return image.crop((0, top, width, top + new))
