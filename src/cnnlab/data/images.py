"""Decoding image files with Pillow into uint8 arrays of one size and colour mode.

Shared by :meth:`Preprocessing.load_images <cnnlab.data.preprocessing.Preprocessing.load_images>`
(prediction on user files) and the ``folder:`` loader, so both treat files identically.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from typing import Iterable

import numpy as np

from cnnlab.data.limits import limit
from cnnlab.errors import DataError
from cnnlab.io import read_regular_bytes

# Pillow's 16-bit grayscale modes; "I" (32-bit) is what older Pillow returns for 16-bit PNGs.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_image(source: str | os.PathLike | bytes, name: str | None = None):
    """Open and fully decode an image (path or bytes); a DataError naming it if Pillow cannot."""
    from PIL import Image, UnidentifiedImageError

    name = name or (os.fspath(source) if not isinstance(source, bytes) else "<bytes>")
    if not isinstance(source, bytes):
        try:
            source = read_regular_bytes(source, limit_name="member_bytes")  # never a FIFO or device
        except FileNotFoundError:
            raise DataError(f"{name}: no such image file") from None
        except IsADirectoryError:
            raise DataError(f"{name}: is a folder, not an image file") from None
    pixels = limit("image_pixels")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; here the limit is a refusal, and a
            # warning from a damaged file (e.g. a truncated EXIF block) is the error's business.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(source))
            width, height = image.size
            if width * height > pixels:
                raise DataError(f"{name}: {width}x{height} pixels, more than the limit of {pixels:,} "
                                f"(raise $CNNLAB_MAX_IMAGE_PIXELS if the image is genuine)")
            if width == 0 or height == 0:
                raise DataError(f"{name}: an image of {width}x{height} pixels holds nothing")
            image.load()  # decode now: a truncated file fails here, not later
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError,
            struct.error, ZeroDivisionError, MemoryError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise DataError(f"{name}: cannot read image ({type(exc).__name__}: {reason})") from None
    return image


def to_8bit(image):
    """16-bit and float grayscale images as 8-bit "L", scaling the full range (65535 -> 255)."""
    from PIL import Image

    if image.mode in _WIDE_MODES:
        wide = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] or already 0..255
        return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")
    return image


def convert_mode(image, channels: int):
    """Convert to "L" (1 channel) or "RGB" (3); transparency is composited onto black.

    Black, because in every dataset here 0 is the background (MNIST strokes are white on black).
    """
    from PIL import Image

    image = to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    target = {1: "L", 3: "RGB"}.get(channels)
    if target is None:
        raise DataError(f"channels: expected 1 (grayscale) or 3 (RGB), got {channels}")
    return image.convert(target)


def image_channels(image) -> int:
    """1 for grayscale modes, 3 for colour ones: the natural channel count of a decoded image."""
    return 1 if image.mode in ("1", "L", "LA", "F", *_WIDE_MODES) else 3


def to_array(image, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """A decoded image as uint8 (H, W, C), converted to ``channels`` and resized to ``size`` = (H, W)."""
    from PIL import Image

    image = convert_mode(image, channels)
    if size is not None and image.size != (size[1], size[0]):
        # Bilinear with Pillow's support scaling, which antialiases when shrinking.
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., np.newaxis] if array.ndim == 2 else array


def load_image_files(paths: Iterable[str | os.PathLike], size: tuple[int, int] | None,
                     channels: int | None) -> np.ndarray:
    """Decode files into one uint8 (N, H, W, C) batch; size and channels default to the first file's."""
    arrays = []
    for path in paths:
        image = open_image(path)
        if channels is None:
            channels = image_channels(image)
        if size is None:
            size = (image.size[1], image.size[0])
        arrays.append(to_array(image, size, channels))
    if not arrays:
        raise DataError("no image files given")
    return np.stack(arrays)
