"""A hand-written reader for the IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST.

Format (LeCun, Cortes & Burges, "THE MNIST DATABASE", http://yann.lecun.com/exdb/mnist/):
a 4-byte magic number ``0x00 0x00 <dtype code> <number of dimensions>``, then one big-endian
uint32 per dimension, then the values in C order, big-endian. The dtype codes are
0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
Files may be gzip-compressed (``.gz``), as distributed.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from cnnlab.data.limits import check_bytes, check_classes, limit
from cnnlab.errors import DataError
from cnnlab.io import read_regular_bytes

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it ends in ``.gz``; a broken stream is a DataError.

    Only a regular file is opened (a FIFO named like a data file would block forever), and the
    decompressed size is capped by :mod:`cnnlab.data.limits`: a small ``.gz`` that inflates to
    gigabytes is refused once it passes the limit, not read whole.
    """
    raw = read_regular_bytes(path)
    if path.suffix != ".gz":
        return raw
    allowed = limit("file_bytes")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(allowed + 1)
    except EOFError:
        raise DataError(
            f"{path}: truncated gzip stream ({len(raw)} bytes; the download was probably cut short)"
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc})") from None
    if len(data) > allowed:
        check_bytes(str(path), len(data))
    return data


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array of the declared shape, in native byte order.

    The header's dimensions are checked against the data's length and the size limits with
    Python integers (no overflow) before any array is made.
    """
    if len(data) < 4:
        raise DataError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 or zero2 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{source}: wrong magic number 0x{data[:4].hex()} (expected 0x0000 then an IDX dtype code and 1-255 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: header declares {ndim} dimensions but the file ends after {len(data)} bytes")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + math.prod(dims) * dtype.itemsize
    check_bytes(f"{source}: header shape {dims}", expected)
    if len(data) != expected:
        raise DataError(
            f"{source}: header says shape {dims} of {dtype.name} ({expected} bytes) but the data has {len(data)} bytes"
        )
    values = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or uncompressed)."""
    path = Path(path)
    return parse_idx(read_bytes(path), str(path))


def images_and_labels(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str):
    """Check an (images, labels) IDX pair and shape it as uint8 NHWC + int64 labels."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_name}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_name}: expected integer labels (N,), got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DataError(f"{labels_name}: {len(labels)} labels but {images_name} has {len(images)} images")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{labels_name}: negative label {int(labels.min())}")
    if len(labels):
        check_classes(labels_name, int(labels.max()) + 1)
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{images_name}: images of {images.shape[1]}x{images.shape[2]} pixels hold nothing")
    return images[..., np.newaxis], labels.astype(np.int64)
