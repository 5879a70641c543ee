"""Validation splits, seeded batching and label helpers.

The seeds split validation data off the training set in two ways, both expressible here:
"last 10,000 of train" (Hsi-Pin Ma's lecture: ``"last:10000"``) and "first 10%" (Jake Tae's tutorial: ``"first:10%"``).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from cnnlab.data.types import Split
from cnnlab.errors import DataError

_SPEC = re.compile(r"^(?:(first|last):)?\s*(\d+(?:\.\d*)?|\.\d+)\s*(%)?$")


def parse_val_split(spec: float | int | str, n: int) -> tuple[str, int]:
    """Turn a validation-split spec into ``(end, count)`` for a training set of ``n`` images.

    ``0.1`` and ``"10%"`` are fractions, ``10000`` a count, ``"first:..."`` / ``"last:..."``
    says which end of the training set to take (default: the last images).
    """
    end, amount, percent = "last", None, False
    if isinstance(spec, bool):
        raise DataError(f"val_split: expected a fraction, a count or 'first:N'/'last:N%', got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        amount = float(spec)
    elif isinstance(spec, (float, np.floating)):
        amount, percent = float(spec) * 100.0, True
    else:
        match = _SPEC.match(str(spec).strip().lower())
        if not match:
            raise DataError(f"val_split: expected a fraction, a count or 'first:N'/'last:N%', got {spec!r}")
        end = match.group(1) or "last"
        amount = float(match.group(2))
        percent = bool(match.group(3)) or (amount < 1 and "." in match.group(2))
        if percent and not match.group(3):
            amount *= 100.0
    if percent:
        if not 0 < amount < 100:
            raise DataError(f"val_split: a fraction must be between 0 and 1 (exclusive), got {spec!r}")
        count = int(round(n * amount / 100.0))
    else:
        if amount != int(amount):
            raise DataError(f"val_split: a count must be a whole number, got {spec!r}")
        count = int(amount)
    if not 0 < count < n:
        raise DataError(f"val_split: {spec!r} leaves no training or no validation images out of {n}")
    return end, count


def split_off_validation(train: Split, spec: float | int | str) -> tuple[Split, Split, dict]:
    """Split ``train`` into (train, val) by ``spec``, deterministically; also returns a record for meta."""
    end, count = parse_val_split(spec, len(train))
    n = len(train)
    if end == "last":
        kept, val = slice(0, n - count), slice(n - count, n)
    else:
        val, kept = slice(0, count), slice(count, n)
    record = {"spec": str(spec), "end": end, "count": count, "train": n - count}
    return train.take(kept), train.take(val), record


def batch_indices(n: int, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
                  drop_last: bool = False) -> Iterator[np.ndarray]:
    """Index arrays of successive batches; with ``shuffle`` the order depends only on (seed, epoch).

    Seeding a fresh generator with ``[seed, epoch]`` (NumPy ``SeedSequence`` entropy) makes epoch
    ``e`` of a resumed run draw exactly the order the uninterrupted run drew.
    """
    if batch_size < 1:
        raise DataError(f"batch_size: expected a positive integer, got {batch_size}")
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
            drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, y_batch)``; the last partial batch is kept unless ``drop_last``."""
    if len(x) != len(y):
        raise DataError(f"batches: {len(x)} images but {len(y)} labels")
    for index in batch_indices(len(x), batch_size, shuffle=shuffle, seed=seed, epoch=epoch, drop_last=drop_last):
        yield x[index], y[index]


def one_hot(y: np.ndarray, num_classes: int, dtype=np.float32) -> np.ndarray:
    """Integer labels ``(N,)`` to one-hot rows ``(N, num_classes)``."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"one_hot: labels must be in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    out = np.zeros((len(y), num_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out
