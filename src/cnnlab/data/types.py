"""The containers every loader returns: :class:`Split`, :class:`Dataset`, :class:`DatasetInfo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import DataError


@dataclass(frozen=True)
class Split:
    """Images ``x`` (uint8, NHWC) and integer labels ``y`` (int64), one per image.

    ``x`` is a NumPy array, or for a streamed folder a :class:`cnnlab.data.files.FileImages`
    that decodes the rows it is indexed with.
    """

    @property
    def streamed(self) -> bool:
        """Whether the images are files decoded on demand rather than an array in memory."""
        return not isinstance(self.x, np.ndarray)

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise DataError(f"split images must be uint8 (N, H, W, C), got {self.x.dtype} {self.x.shape}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise DataError(f"split has {len(self.x)} images but labels of shape {self.y.shape}")
        if self.y.dtype != np.int64:
            object.__setattr__(self, "y", self.y.astype(np.int64))

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: np.ndarray | slice) -> Split:
        """The images (and labels) at ``index``, as a new split (streamed images stay undecoded)."""
        subset = getattr(self.x, "subset", None)
        return Split(subset(index) if subset else self.x[index], self.y[index])

    @classmethod
    def empty(cls, image_shape: tuple[int, int, int]) -> Split:
        """A split with no images; stands in for a split the caller chose not to load."""
        return cls(np.zeros((0, *image_shape), np.uint8), np.zeros((0,), np.int64))


@dataclass
class Dataset:
    """A loaded dataset: train / validation / test splits, class names and provenance."""

    name: str
    train: Split
    val: Split | None
    test: Split | None
    class_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Image shape ``(H, W, C)`` shared by every split."""
        return tuple(int(d) for d in self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        """``train``, ``val`` or ``test`` by name; a missing split is a :class:`DataError`."""
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; expected train, val or test")
        value = getattr(self, name)
        if value is None:
            hint = " (ask for a validation split with val_split / --val-split)" if name == "val" else ""
            raise DataError(f"{self.name}: has no {name} split{hint}")
        return value

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{n}={len(s)}" for n, s in (("train", self.train), ("val", self.val), ("test", self.test)) if s is not None
        )
        return f"Dataset({self.name!r}, {sizes}, input_shape={self.input_shape}, classes={self.num_classes})"


@dataclass(frozen=True)
class DatasetInfo:
    """One row of :func:`cnnlab.data.list_datasets`: what a dataset is and whether its files are here."""

    name: str
    description: str
    files: list[str]
    present: bool
    location: Path | None
