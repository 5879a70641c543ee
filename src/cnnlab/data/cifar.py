"""CIFAR-10 and CIFAR-100 in their canonical "python version" (Krizhevsky 2009).

https://www.cs.toronto.edu/~kriz/cifar.html: each batch is a pickled dict whose ``b"data"`` is a
uint8 array (N, 3072), a row being the 1024 red, then 1024 green, then 1024 blue values of a
32x32 image in row-major order (CHW), and whose ``b"labels"`` (CIFAR-10) or ``b"fine_labels"``
(CIFAR-100) is a list of ints. Class names are in ``batches.meta`` (``b"label_names"``) or
``meta`` (``b"fine_label_names"``).

Pickle can call any importable function while loading, so the files are read with an unpickler
that resolves only the handful of globals a NumPy array needs (the approach of the Python docs,
"Restricting Globals", https://docs.python.org/3/library/pickle.html#restricting-globals).
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data.archives import read_members
from cnnlab.data.limits import check_classes
from cnnlab.data.sources import CIFAR10, CIFAR100, Source, verify_file
from cnnlab.data.types import Split
from cnnlab.errors import DataError
from cnnlab.io import read_regular_bytes

IMAGE_SHAPE = (3, 32, 32)  # as stored: channels first


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """What ``_codecs.encode`` does in protocol-2 pickles written by Python 3 (``bytes`` values)."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin-1")


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy(._core).multiarray._reconstruct

# (module, name) -> object: everything a pickled ndarray inside a dict/list needs, nothing else.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays; any other global is refused before it is called."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def safe_unpickle(data: bytes, source: str) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; a DataError naming ``source`` if it is unsafe or broken."""
    try:
        # encoding="bytes": the canonical files were written by Python 2, whose str must stay bytes.
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{source}: unsafe or invalid pickle ({exc})") from None
    except (
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        RecursionError,
        MemoryError,
        struct.error,
    ) as exc:
        raise DataError(f"{source}: not a valid CIFAR pickle ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class CifarLayout:
    """Where things are in one CIFAR variant."""

    source: Source
    folder: str  # inside the tarball and once extracted
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: bytes
    names_key: bytes


CIFAR10_LAYOUT = CifarLayout(
    CIFAR10,
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("test_batch",),
    "batches.meta",
    b"labels",
    b"label_names",
)
CIFAR100_LAYOUT = CifarLayout(
    CIFAR100, "cifar-100-python", ("train",), ("test",), "meta", b"fine_labels", b"fine_label_names"
)


def missing(layout: CifarLayout, folder: Path) -> list[str]:
    """Nothing if the tarball or the extracted folder is there, else the tarball's name."""
    if (folder / layout.source.files[0].name).is_file() or (folder / layout.folder / layout.meta).is_file():
        return []
    return [layout.source.files[0].name]


def load_cifar(layout: CifarLayout, folder: Path, splits=("train", "test"), verify: bool = True):
    """(train, test, class_names, meta) from the extracted folder if present, else the tarball."""
    wanted = [layout.meta, *(layout.train if "train" in splits else ()), *(layout.test if "test" in splits else ())]
    extracted = folder / layout.folder
    if (extracted / layout.meta).is_file():
        contents = {}
        for name in wanted:
            if not os.path.lexists(extracted / name):
                raise DataError(f"{extracted}: missing {name}")
            contents[name] = read_regular_bytes(extracted / name, limit_name="member_bytes")
        where = str(extracted)
    else:
        tarball = folder / layout.source.files[0].name
        if verify:
            verify_file(tarball, layout.source.files[0])
        found = read_members(tarball, {f"{layout.folder}/{name}" for name in wanted})
        absent = [name for name in wanted if f"{layout.folder}/{name}" not in found]
        if absent:
            raise DataError(f"{tarball}: missing member(s) {', '.join(f'{layout.folder}/{n}' for n in absent)}")
        contents = {name: found[f"{layout.folder}/{name}"] for name in wanted}
        where = str(tarball)
    meta = safe_unpickle(contents[layout.meta], f"{where}:{layout.meta}")
    class_names = _class_names(meta, layout, where)
    loaded = {}
    for split, names in (("train", layout.train), ("test", layout.test)):
        if split in splits:
            parts = [_batch(contents[n], f"{where}:{n}", layout, len(class_names)) for n in names]
            loaded[split] = Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
    empty = Split.empty((32, 32, 3))
    return loaded.get("train", empty), loaded.get("test", empty), class_names, {"source": where}


def _class_names(meta: object, layout: CifarLayout, where: str) -> list[str]:
    if not isinstance(meta, dict) or not isinstance(meta.get(layout.names_key), list):
        raise DataError(f"{where}:{layout.meta}: expected a dict with {layout.names_key!r} (the class names)")
    names = meta[layout.names_key]
    if not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{where}:{layout.meta}: {layout.names_key!r} must be a non-empty list of strings")
    check_classes(f"{where}:{layout.meta}", len(names))
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise DataError(f"{where}:{layout.meta}: {layout.names_key!r} holds a name that is not UTF-8") from None


def _batch(content: bytes, source: str, layout: CifarLayout, num_classes: int) -> Split:
    """One batch dict -> Split, pixels reordered from CHW rows to HWC images."""
    batch = safe_unpickle(content, source)
    if not isinstance(batch, dict) or b"data" not in batch or layout.label_key not in batch:
        raise DataError(f"{source}: expected a dict with b'data' and {layout.label_key!r}")
    data, labels = batch[b"data"], batch[layout.label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{source}: b'data' must be a uint8 array (N, 3072), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    if not isinstance(labels, (list, np.ndarray)) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels
    ):
        raise DataError(f"{source}: {layout.label_key!r} must be a list of integers")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{source}: {layout.label_key!r} holds a label too large for 64 bits") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{source}: {len(labels)} labels but {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{source}: labels outside 0..{num_classes - 1}")
    images = data.reshape(-1, *IMAGE_SHAPE).transpose(0, 2, 3, 1)
    return Split(np.ascontiguousarray(images), labels.astype(np.int64))
