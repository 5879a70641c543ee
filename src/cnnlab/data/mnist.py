"""MNIST, Fashion-MNIST and any IDX dataset laid out the same way (``idx:DIR``: KMNIST, EMNIST...)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cnnlab.data import idx
from cnnlab.data.sources import FileSpec, Source, find_file, uncompressed_names, verify_file
from cnnlab.data.types import Split
from cnnlab.errors import DataError

MNIST_CLASSES = [str(d) for d in range(10)]
# Class names from https://github.com/zalandoresearch/fashion-mnist#labels
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# (images, labels) file names of each split, as distributed.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load_idx_split(
    folder: Path, images_name: str, labels_name: str, specs: dict[str, FileSpec], verify: bool
) -> tuple[Split, dict]:
    """One split from its two canonical IDX files: ``.gz`` (checksum verified) or uncompressed."""
    paths, record = [], {}
    for name in (images_name, labels_name):
        path, checked = _locate(folder, specs[name], verify)
        paths.append(path)
        record[path.name] = "checksum verified" if checked else "structure checked"
    return _read_pair(*paths), record


def _read_pair(images_path: Path, labels_path: Path) -> Split:
    x, y = idx.images_and_labels(
        idx.read_idx(images_path), idx.read_idx(labels_path), str(images_path), str(labels_path)
    )
    return Split(x, y)


def _locate(folder: Path, spec: FileSpec, verify: bool) -> tuple[Path, bool]:
    found = find_file(folder, spec)
    if found is None:
        raise DataError(f"{folder}: missing {spec.name}")
    path, canonical = found
    if canonical and verify:
        verify_file(path, spec)
    return path, canonical and verify


def load_source(source: Source, folder: Path, splits=("train", "test"), verify: bool = True):
    """Train and test splits of a canonical IDX dataset in ``folder``; returns (train, test, meta)."""
    specs = {spec.name: spec for spec in source.files}
    loaded, record = {}, {}
    for split in splits:
        loaded[split], files = load_idx_split(folder, *SPLIT_FILES[split], specs, verify)
        record.update(files)
    return (*_train_test(folder, loaded), {"folder": str(folder), "files": record})


# idx:DIR file names: MNIST's and KMNIST's "t10k-...", EMNIST's "emnist-balanced-test-...".
GENERIC_STEMS = {"train": ("train",), "test": ("t10k", "test")}
_IMAGES_FILE = re.compile(r"^(.*?)(train|t10k|test)-images[-.]idx3-ubyte(\.gz)?$")


def load_idx_dir(folder: Path, splits=("train", "test"), prefix: str | None = None, transpose: bool = False):
    """``idx:DIR``: the MNIST file layout, possibly with a name prefix (EMNIST); structure checks only.

    ``transpose=True`` swaps rows and columns, which EMNIST's images need (they are stored
    transposed; Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten letters").
    """
    if not folder.is_dir():
        raise DataError(f"idx:{folder}: not a folder")
    prefix = detect_prefix(folder) if prefix is None else prefix
    loaded, record = {}, {}
    for split in splits:
        images, labels = _generic_pair(folder, split, prefix)
        part = _read_pair(images, labels)
        loaded[split] = Split(part.x.transpose(0, 2, 1, 3).copy(), part.y) if transpose else part
        record.update({images.name: "structure checked", labels.name: "structure checked"})
    train, test = _train_test(folder, loaded)
    labels = np.concatenate([s.y for s in (train, test) if len(s)])
    if labels.min() < 0:
        raise DataError(f"idx:{folder}: negative labels")
    return train, test, {"folder": str(folder), "files": record, "num_classes": int(labels.max()) + 1}


def detect_prefix(folder: Path) -> str:
    """The file-name prefix of the one IDX set in ``folder`` ("" for MNIST names)."""
    prefixes = sorted({m.group(1) for f in folder.iterdir() if (m := _IMAGES_FILE.match(f.name))})
    if len(prefixes) > 1:
        raise DataError(
            f"idx:{folder}: several IDX sets ({', '.join(p or '(none)' for p in prefixes)}); "
            f"choose one with the prefix option"
        )
    return prefixes[0] if prefixes else ""


def _generic_pair(folder: Path, split: str, prefix: str) -> tuple[Path, Path]:
    for stem in GENERIC_STEMS[split]:
        images = _find_variant(folder, f"{prefix}{stem}-images-idx3-ubyte")
        labels = _find_variant(folder, f"{prefix}{stem}-labels-idx1-ubyte")
        if images and labels:
            return images, labels
    raise DataError(
        f"idx:{folder}: missing {prefix}{GENERIC_STEMS[split][0]}-images-idx3-ubyte.gz and "
        f"{prefix}{GENERIC_STEMS[split][0]}-labels-idx1-ubyte.gz (or their uncompressed forms)"
    )


def _find_variant(folder: Path, plain: str) -> Path | None:
    for name in (plain + ".gz", *uncompressed_names(plain + ".gz")):
        if os.path.lexists(folder / name):  # a FIFO or device here is found, then refused by name when read
            return folder / name
    return None


def _train_test(folder: Path, loaded: dict) -> tuple[Split, Split]:
    shape = next(iter(loaded.values())).x.shape[1:]
    train = loaded["train"] if "train" in loaded else Split.empty(shape)
    test = loaded["test"] if "test" in loaded else Split.empty(shape)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(f"{folder}: train images are {train.x.shape[1:3]} but test images are {test.x.shape[1:3]}")
    return train, test
