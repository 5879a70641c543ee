"""Decoding image files with Pillow into uint8 arrays of one size and colour mode.

Shared by :meth:`Preprocessing.load_images <cnnlab.data.preprocessing.Preprocessing.load_images>`
(prediction on user files), the ``folder:`` loader and the streaming pipeline
(:mod:`cnnlab.data.streaming`), so all three treat files identically.

Resize policies (``resize=``), for an image whose shape differs from the target (H, W):

- ``squash``: resize to (H, W), ignoring the aspect ratio (what Keras's
  ``image_dataset_from_directory`` does by default);
- ``center-crop``: scale so the image covers (H, W), keeping its aspect ratio, then cut the centre;
- ``pad``: scale so the image fits inside (H, W), keeping its aspect ratio, then add black borders.

A JPEG that is at least twice the size it will be scaled to is decoded at a reduced scale
(libjpeg's DCT scaling, Pillow's ``draft``) before the bilinear resize: the same pixels for a
given file whatever the caller, and several times faster for photos.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from typing import Iterable

import numpy as np

from cnnlab.constants import RESIZE_POLICIES
from cnnlab.data.limits import limit
from cnnlab.errors import DataError
from cnnlab.io import read_regular_bytes

SOURCE_SIZE = "cnnlab_source_size"  # key in a decoded image's ``info``: its (width, height) in the file

# Pillow's 16-bit grayscale modes; "I" (32-bit) is what older Pillow returns for 16-bit PNGs.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_image(
    source: str | os.PathLike | bytes,
    name: str | None = None,
    size: tuple[int, int] | None = None,
    resize: str = "squash",
):
    """Open and fully decode an image (path or bytes); a DataError naming it if Pillow cannot.

    With ``size`` (the (H, W) it will be resized to), a large JPEG is decoded at a reduced scale.
    """
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
            width, height = original = image.size
            if width * height > pixels:
                raise DataError(
                    f"{name}: {width}x{height} pixels, more than the limit of {pixels:,} "
                    f"(raise $CNNLAB_MAX_IMAGE_PIXELS if the image is genuine)"
                )
            if width == 0 or height == 0:
                raise DataError(f"{name}: an image of {width}x{height} pixels holds nothing")
            draft(image, size, resize)
            image.load()  # decode now: a truncated file fails here, not later
    except DataError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        TypeError,
        IndexError,
        KeyError,
        struct.error,
        ZeroDivisionError,
        MemoryError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise DataError(f"{name}: cannot read image ({type(exc).__name__}: {reason})") from None
    image.info[SOURCE_SIZE] = original  # (width, height) as stored, before any reduced-scale decoding
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
    return image if image.mode == target else image.convert(target)  # convert() copies even to the same mode


def image_channels(image) -> int:
    """1 for grayscale modes, 3 for colour ones: the natural channel count of a decoded image."""
    return 1 if image.mode in ("1", "L", "LA", "F", *_WIDE_MODES) else 3


def check_resize(policy: str) -> str:
    """``policy`` if it is a known resize policy (``center_crop`` is accepted for ``center-crop``)."""
    value = str(policy).strip().lower().replace("_", "-")
    if value not in RESIZE_POLICIES:
        raise DataError(f"resize: expected one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")
    return value


def scaled_size(source: tuple[int, int], target: tuple[int, int], policy: str) -> tuple[int, int]:
    """(width, height) the image of ``source`` = (width, height) is resized to before any crop or pad,
    for a target of ``target`` = (height, width)."""
    width, height = source
    th, tw = target
    if policy == "squash" or (width, height) == (tw, th):
        return tw, th
    scale = (max if policy == "center-crop" else min)(tw / width, th / height)
    if policy == "center-crop":  # cover: never below the target (rounding must not leave a gap)
        return max(tw, round(width * scale)), max(th, round(height * scale))
    return max(1, min(tw, round(width * scale))), max(1, min(th, round(height * scale)))


def draft(image, size: tuple[int, int] | None, policy: str = "squash") -> None:
    """Ask libjpeg to decode a large JPEG at a reduced scale (still at least the size needed).

    Call before ``image.load()``; no effect on other formats or when the image is not at least
    twice the size it will be scaled to.
    """
    if size is None or getattr(image, "format", None) != "JPEG":
        return
    needed = scaled_size(image.size, size, policy)
    if image.size[0] >= 2 * needed[0] and image.size[1] >= 2 * needed[1]:
        image.draft(image.mode if image.mode in ("L", "RGB") else None, needed)


def fit_image(image, size: tuple[int, int], policy: str = "squash"):
    """``image`` resized to ``size`` = (H, W) by the resize ``policy`` (see the module docstring)."""
    from PIL import Image

    th, tw = size
    if image.size == (tw, th):
        return image
    width, height = scaled_size(image.size, size, policy)
    if image.size != (width, height):
        # Bilinear with Pillow's support scaling, which antialiases when shrinking.
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    if (width, height) == (tw, th):
        return image
    if policy == "center-crop":
        left, top = (width - tw) // 2, (height - th) // 2
        return image.crop((left, top, left + tw, top + th))
    canvas = Image.new(image.mode, (tw, th), 0)  # pad: black borders, as ``pad`` in Preprocessing
    canvas.paste(image, ((tw - width) // 2, (th - height) // 2))
    return canvas


def to_array(image, size: tuple[int, int] | None, channels: int, resize: str = "squash") -> np.ndarray:
    """A decoded image as uint8 (H, W, C), converted to ``channels`` and resized to ``size`` = (H, W)."""
    image = convert_mode(image, channels)
    if size is not None:
        image = fit_image(image, size, resize)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., np.newaxis] if array.ndim == 2 else array


def decode(
    source: str | os.PathLike | bytes,
    size: tuple[int, int] | None,
    channels: int,
    resize: str = "squash",
    name: str | None = None,
) -> np.ndarray:
    """Open, decode (JPEGs at a reduced scale when that loses nothing) and convert one image file."""
    image = open_image(source, name=name, size=size, resize=resize)
    return to_array(image, size, channels, resize)


def resize_array(x: np.ndarray, size: tuple[int, int], resize: str = "squash") -> np.ndarray:
    """uint8 images (N, H, W, C) resized to ``size`` by the same Pillow code as decoded files."""
    from PIL import Image

    x = np.asarray(x)
    if x.shape[1:3] == tuple(size):
        return x
    out = np.empty((len(x), *size, x.shape[-1]), np.uint8)
    for i, image in enumerate(x):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        fitted = np.asarray(fit_image(pil, size, resize), dtype=np.uint8)
        out[i] = fitted[..., np.newaxis] if fitted.ndim == 2 else fitted
    return out


def load_image_files(
    paths: Iterable[str | os.PathLike], size: tuple[int, int] | None, channels: int | None, resize: str = "squash"
) -> np.ndarray:
    """Decode files into one uint8 (N, H, W, C) batch; size and channels default to the first file's."""
    arrays = []
    for path in paths:
        image = open_image(path, size=size, resize=resize)
        if channels is None:
            channels = image_channels(image)
        if size is None:
            size = (image.size[1], image.size[0])
        arrays.append(to_array(image, size, channels, resize))
    if not arrays:
        raise DataError("no image files given")
    return np.stack(arrays)
