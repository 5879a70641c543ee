"""Imbalanced classes: per-class loss weights (``--class-weight``) and a class-balanced sampler
(``--sampler balanced``)."""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.training.config import class_weight_table


def class_weights(spec: str, y: np.ndarray, num_classes: int) -> np.ndarray | None:
    """The loss weight of each class for ``--class-weight spec`` (None when off).

    ``balanced`` is scikit-learn's rule, ``n_samples / (n_classes * count_c)``, so the weighted
    classes contribute equally to the loss; a class absent from ``y`` gets 0 (no image to weigh).
    ``CLASS=WEIGHT`` pairs set those classes; the others weigh 1.
    """
    if not spec:
        return None
    if spec == "balanced":
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes).astype(np.float64)
        weights = np.zeros(num_classes)
        present = counts > 0
        weights[present] = len(y) / (num_classes * counts[present])
        return weights.astype(np.float32)
    table = class_weight_table(spec)
    outside = sorted(c for c in table if c >= num_classes)
    if outside:
        raise ConfigError(
            f"--class-weight: class {outside[0]} is outside the dataset's {num_classes} classes "
            f"(0 to {num_classes - 1})"
        )
    weights = np.ones(num_classes, dtype=np.float32)
    for index, weight in table.items():
        weights[index] = weight
    return weights


def balanced_batch_indices(
    y: np.ndarray, batch_size: int, *, seed: int = 0, epoch: int = 0, drop_last: bool = False
) -> list[np.ndarray]:
    """An epoch of batches in which every class present is drawn equally often.

    As many images per epoch as the training set has (so an epoch is the same number of steps as
    with ``--sampler shuffle``). The epoch's class sequence is a shuffled, evenly repeated list of
    the classes present (counts differ by at most one); each class slot takes a random image of
    that class, with replacement, so small classes are repeated and large ones subsampled. The
    generator is seeded with ``(seed, epoch)`` only: a resumed run draws the same batches.
    """
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    classes = np.unique(y)
    rng = np.random.default_rng([int(seed), int(epoch), 1])
    slots = rng.permutation(np.resize(rng.permutation(classes), n))
    members = {c: np.flatnonzero(y == c) for c in classes}
    order = np.empty(n, dtype=np.int64)
    for c in classes:
        where = np.flatnonzero(slots == c)
        order[where] = members[c][rng.integers(0, len(members[c]), len(where))]
    stop = n - n % batch_size if drop_last else n
    return [order[start : start + batch_size] for start in range(0, stop, batch_size)]
