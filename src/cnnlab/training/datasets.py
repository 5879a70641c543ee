"""The dataset as a run sees it: resized, split (recorded), then capped.

In order: the dataset is loaded (a folder's images decoded at ``--image-size`` with the
``--resize`` policy; other datasets' arrays resized the same way), its validation split taken
(``--val-split``), and, when it has no test split, a stratified and seeded validation and test
split held out of its training images (``--test-split``, 10% each by default). That split is a
*record* (the source's checksum and the held-out indices) which the run keeps as ``split.json``:
resuming, ``cnnlab evaluate`` and the same command on another day apply the record instead of
drawing again, and refuse data whose training images changed. The sample caps
(``--max-train-samples``, ``--max-eval-samples``) come last, as fixed subsets.
"""

from __future__ import annotations

import numpy as np

SPLIT_FILE = "split.json"


def load_run_data(config, data_dir=None, record: dict | None = None):
    """``(dataset, split record or None)`` for ``config``; ``record`` re-applies a recorded split."""
    from cnnlab.data import load_dataset
    from cnnlab.data.splits import apply_split_record, stratified_split

    size = tuple(int(v) for v in config.image_size.split(",")) if config.image_size else None
    options = {}
    if config.dataset.startswith("folder:"):
        options = {"resize": config.resize, **({"image_size": size} if size else {})}
        if config.skip_bad:
            options["skip_bad"] = True
    data = load_dataset(config.dataset, data_dir=data_dir, val_split=config.val_split, **options)
    if size and not config.dataset.startswith("folder:") and tuple(data.input_shape[:2]) != size:
        data = _resized(data, size, config.resize)
    if data.test is not None and len(data.test) == 0:
        data.test = None
    if record is not None:
        data = apply_split_record(data, record)
    elif data.test is None and config.test_split != "none":
        val = "auto" if data.val is None and config.val_split is None else None
        test = "auto" if config.test_split == "auto" else _spec(config.test_split)
        data, record = stratified_split(data, val=val, test=test, seed=config.seed)
    data.train = _subset(data.train, config.max_train_samples)
    data.val = _subset(data.val, config.max_eval_samples)
    data.test = _subset(data.test, config.max_eval_samples)
    return data, record


def load_run_dataset(config, data_dir=None, record: dict | None = None):
    """The dataset as the run sees it (see :func:`load_run_data`)."""
    return load_run_data(config, data_dir, record)[0]


def _spec(text: str):
    """The schema's text ("0.1", "500") as the number the splitter takes."""
    number = float(text)
    return int(number) if number >= 1 else number


def _resized(data, size, policy):
    """Every split of an in-memory dataset brought to ``size`` (H, W) by ``policy``."""
    from dataclasses import replace

    from cnnlab.data.preprocessing import Preprocessing

    resize = Preprocessing(image_size=size, channels=data.input_shape[2], resize=policy).resize_images
    parts = {name: getattr(data, name) for name in ("train", "val", "test")}
    new = {name: None if part is None else replace(part, x=resize(part.x)) for name, part in parts.items()}
    return replace(data, **new)


def _subset(split, limit: int):
    """The first ``limit`` images of a fixed random permutation (class-sorted folders stay mixed)."""
    if split is None or not limit or limit >= len(split):
        return split
    index = np.sort(np.random.default_rng(0).permutation(len(split))[:limit])
    return split.take(index)
