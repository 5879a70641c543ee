"""Datasets: registry, file-format readers, downloads, preprocessing and augmentation.

>>> from cnnlab.data import load_dataset
>>> data = load_dataset("mnist", val_split="last:10000")   # doctest: +SKIP
>>> data.train.x.shape, data.val.x.shape, data.test.x.shape  # doctest: +SKIP
((50000, 28, 28, 1), (10000, 28, 28, 1), (10000, 28, 28, 1))
"""

from cnnlab.data.registry import list_datasets, load_dataset
from cnnlab.data.splits import batch_indices, batches, one_hot, parse_val_split
from cnnlab.data.types import Dataset, DatasetInfo, Split

__all__ = [
    "Dataset",
    "DatasetInfo",
    "Split",
    "load_dataset",
    "list_datasets",
    "batches",
    "batch_indices",
    "one_hot",
    "parse_val_split",
    "Preprocessing",
    "Augmentation",
]


def __getattr__(name: str):
    # Preprocessing / Augmentation live in their own modules; loaded on first use.
    if name == "Preprocessing":
        from cnnlab.data.preprocessing import Preprocessing

        return Preprocessing
    if name == "Augmentation":
        from cnnlab.data.augmentation import Augmentation

        return Augmentation
    raise AttributeError(f"module 'cnnlab.data' has no attribute {name!r}")
