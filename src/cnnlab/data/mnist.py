"""MNIST, Fashion-MNIST and any IDX dataset laid out the same way (``idx:DIR``: KMNIST, EMNIST...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.data import idx
from cnnlab.data.sources import FileSpec, Source, find_file, uncompressed_names, verify_file
from cnnlab.data.types import Split
from cnnlab.errors import DataError

MNIST_CLASSES = [str(d) for d in range(10)]
# Class names from https://github.com/zalandoresearch/fashion-mnist#labels
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# (images, labels) file names of each split, as distributed.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load_idx_split(folder: Path, images_name: str, labels_name: str, specs: dict[str, FileSpec],
                   verify: bool) -> tuple[Split, dict]:
    """One split from its two IDX files: canonical ``.gz`` (checksum verified) or uncompressed."""
    arrays, record = [], {}
    for name in (images_name, labels_name):
        path, checked = _locate(folder, name, specs, verify)
        arrays.append(idx.read_idx(path))
        record[path.name] = "checksum verified" if checked else "structure checked"
    x, y = idx.images_and_labels(arrays[0], arrays[1], images_name, labels_name)
    return Split(x, y), record


def _locate(folder: Path, name: str, specs: dict[str, FileSpec], verify: bool) -> tuple[Path, bool]:
    spec = specs.get(name)
    if spec is not None:
        found = find_file(folder, spec)
        if found is None:
            raise DataError(f"{folder}: missing {name}")
        path, canonical = found
        if canonical and verify:
            verify_file(path, spec)
        return path, canonical and verify
    for candidate in [name, *uncompressed_names(name)]:
        if (folder / candidate).is_file():
            return folder / candidate, False
    raise DataError(f"{folder}: missing {name} (or its uncompressed form {uncompressed_names(name)[0]})")


def load_source(source: Source, folder: Path, splits=("train", "test"), verify: bool = True):
    """Train and test splits of a canonical IDX dataset in ``folder``; returns (train, test, meta)."""
    specs = {spec.name: spec for spec in source.files}
    return _load_pairs(folder, specs, splits, verify)


def load_idx_dir(folder: Path, splits=("train", "test")):
    """``idx:DIR``: the same four-file layout, no known checksums (structure checks only)."""
    if not folder.is_dir():
        raise DataError(f"idx:{folder}: not a folder")
    train, test, meta = _load_pairs(folder, {}, splits, verify=False)
    labels = np.concatenate([s.y for s in (train, test) if s is not None and len(s)])
    if labels.min() < 0:
        raise DataError(f"idx:{folder}: negative labels")
    meta["num_classes"] = int(labels.max()) + 1
    return train, test, meta


def _load_pairs(folder: Path, specs: dict, splits, verify: bool):
    loaded, record = {}, {}
    for split in splits:
        loaded[split], files = load_idx_split(folder, *SPLIT_FILES[split], specs, verify)
        record.update(files)
    shape = next(iter(loaded.values())).x.shape[1:]
    train = loaded["train"] if "train" in loaded else Split.empty(shape)
    test = loaded["test"] if "test" in loaded else Split.empty(shape)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(f"{folder}: train images are {train.x.shape[1:3]} but test images are {test.x.shape[1:3]}")
    return train, test, {"folder": str(folder), "files": record}
