"""The dataset as a run sees it: its validation split, then its sample caps."""

from __future__ import annotations

import numpy as np


def load_run_dataset(config, data_dir=None):
    """The dataset as the run sees it: validation split, then the sample caps (fixed subsets)."""
    from cnnlab.data import load_dataset

    data = load_dataset(config.dataset, data_dir=data_dir, val_split=config.val_split)
    data.train = _subset(data.train, config.max_train_samples)
    data.val = _subset(data.val, config.max_eval_samples)
    data.test = _subset(data.test, config.max_eval_samples)
    return data


def _subset(split, limit: int):
    """The first ``limit`` images of a fixed random permutation (class-sorted folders stay mixed)."""
    if split is None or not limit or limit >= len(split):
        return split
    index = np.sort(np.random.default_rng(0).permutation(len(split))[:limit])
    return split.take(index)
