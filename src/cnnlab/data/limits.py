"""The one place where a dataset's declared sizes are checked against limits, before anything is allocated.

A hostile or damaged file can declare sizes far beyond what it holds (an IDX header saying
4,294,967,295 x 4,294,967,295 images, a tar member of 40 GB, a PNG of 100,000 x 100,000 pixels).
Every reader asks this module first and refuses such a file with a one-line
:class:`~cnnlab.errors.DataError` naming it, instead of running out of memory or hanging.

The limits are far above the largest real dataset cnnlab reads (CIFAR-100's training pickle is
155 MB; EMNIST by-class's images are 547 MB decompressed) and can be changed per process with
environment variables, e.g. ``CNNLAB_MAX_MEMBER_BYTES=2e9``.
"""

from __future__ import annotations

import os

from cnnlab.errors import DataError

GIB = 1 << 30
MIB = 1 << 20

# name -> (default, environment variable, what it limits)
_LIMITS = {
    "file_bytes": (4 * GIB, "CNNLAB_MAX_FILE_BYTES", "bytes in one data file once decompressed"),
    "member_bytes": (512 * MIB, "CNNLAB_MAX_MEMBER_BYTES", "bytes in one archive member"),
    "archive_bytes": (8 * GIB, "CNNLAB_MAX_ARCHIVE_BYTES", "bytes read from one archive in total"),
    "image_pixels": (89_478_485, "CNNLAB_MAX_IMAGE_PIXELS", "pixels in one image (Pillow's own default)"),
    "classes": (100_000, "CNNLAB_MAX_CLASSES", "classes in one dataset"),
}


def limit(name: str) -> int:
    """The current value of a limit (its environment variable, else the default)."""
    default, env, _ = _LIMITS[name]
    text = os.environ.get(env)
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise DataError(f"${env}: expected a number, got {text!r}") from None
    if value <= 0:
        raise DataError(f"${env}: expected a positive number, got {text!r}")
    return value


def check_bytes(source: str, declared: int, name: str = "file_bytes") -> None:
    """Refuse ``source`` if it declares more than the limit ``name`` allows (before reading it)."""
    allowed = limit(name)
    if declared > allowed:
        _, env, what = _LIMITS[name]
        raise DataError(
            f"{source}: declares {_size(declared)}, more than the {_size(allowed)} limit on {what} "
            f"(raise ${env} if the file is genuine)"
        )


def check_classes(source: str, num_classes: int) -> None:
    allowed = limit("classes")
    if num_classes > allowed:
        raise DataError(
            f"{source}: labels imply {num_classes:,} classes, more than the limit of {allowed:,} "
            f"(raise $CNNLAB_MAX_CLASSES if the labels are genuine)"
        )


def _size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"
