"""The dataset as a run sees it: resized, split (recorded), then capped.

In order: the dataset is loaded (a folder's images decoded at ``--image-size`` with the
``--resize`` policy; other datasets' arrays resized the same way), its validation split taken
(``--val-split``), and, when it has no test split, a stratified and seeded validation and test
split held out of its training images (``--test-split``, 10% each by default). That split is a
*record* (the source's checksum and the held-out indices) which the run keeps as ``split.json``:
resuming, ``cnnlab evaluate`` and the same command on another day apply the record instead of
drawing again, and refuse data whose training images changed. The sample caps
(``--max-train-samples``, ``--max-eval-samples``) come last, as fixed subsets.

Streaming (``--stream``): a ``folder:`` on disk can stay on disk, its splits'
images a :class:`cnnlab.data.files.FileImages` decoded per batch. :func:`resolve_stream`
decides ``auto`` (the one place it is decided); the run records the answer in config.json.
"""

from __future__ import annotations

import os

import numpy as np

SPLIT_FILE = "split.json"
STREAM_SHARE = 0.25  # --stream auto streams when the decoded images would exceed this share of available memory
FIT_SAMPLE = 10_000  # streamed images (per split) that Preprocessing.fit and the data check see at most ...
SAMPLE_BYTES = 256 * 2**20  # ... and fewer when that many would take more than this decoded


def resolve_stream(images: int, image_bytes: int, available: int) -> bool:
    """``--stream auto``: stream when ``images`` decoded at ``image_bytes`` each would take more than
    STREAM_SHARE of ``available`` memory (bytes). Pure. A quarter, not all: the in-memory loader
    holds the decoded list and the stacked array at once while it loads, and training needs the rest."""
    return images * image_bytes > STREAM_SHARE * available


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else physical memory; 0 if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            return 1024 * int(next(line for line in fh if line.startswith("MemAvailable")).split()[1])
    except (OSError, StopIteration, ValueError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 0


def stream_choice(config, data_dir=None, record: dict | None = None) -> tuple[str, str]:
    """``(on | off, why)``: ``config.stream`` with ``auto`` resolved by :func:`resolve_stream`.

    ``on`` for a dataset that is not a folder of images on disk is a ConfigError. A run folder
    from before ``--stream`` existed (a split record but ``auto``) was in memory: ``off``.
    """
    from pathlib import Path

    from cnnlab.errors import ConfigError

    choice = config.stream
    if choice == "off" or (choice == "auto" and record is not None):
        return "off", ""
    folder = None
    if config.dataset.startswith("folder:"):
        from cnnlab.data.registry import _prefix_target

        folder = _prefix_target("folder", config.dataset[len("folder:") :], data_dir)
    if folder is None or not Path(folder).is_dir() or config.skip_bad:
        if choice == "on":
            what = "a folder of images on disk (folder:PATH of a directory, not an archive)"
            if config.skip_bad:
                raise ConfigError("--stream: on does not combine with --skip-bad (bad files are found by decoding)")
            raise ConfigError(f"--stream: on reads {what}; {config.dataset} is not one (use --stream off)")
        return "off", ""
    if choice == "on":
        return "on", "--stream on"
    from cnnlab.data.folder import _file_source, default_image_size, plan

    names, read = _file_source(Path(folder))
    files = sorted(plan(Path(folder), list(names))["files"])
    if config.image_size:
        size = tuple(int(v) for v in config.image_size.split(","))
        size = size * 2 if len(size) == 1 else size
    else:
        size = default_image_size(Path(folder), files, read)[0]
    need, available = len(files) * size[0] * size[1] * 3, available_memory()
    if not available or not resolve_stream(len(files), size[0] * size[1] * 3, available):
        return "off", ""
    return "on", (
        f"--stream auto: {len(files)} images at {size[0]}x{size[1]} would take {need / 2**30:.2f} GiB decoded, "
        f"more than {STREAM_SHARE:.0%} of the {available / 2**30:.2f} GiB available"
    )


def fit_sample(x, statistics: bool = True):
    """The images to fit :class:`Preprocessing` on: all of an in-memory array; of streamed ones at
    most FIT_SAMPLE (a fixed seed-0 sample, decoded), or one image when ``statistics`` is False
    (``normalize`` unit or none take only the size and channels)."""
    if isinstance(x, np.ndarray):
        return x
    if not statistics:
        return x[:1]
    return x[sample_rows(x)]


def sample_rows(x) -> np.ndarray:
    """The rows of a fixed seed-0 sample of streamed images: every row, or at most FIT_SAMPLE and
    at most SAMPLE_BYTES decoded (5,461 images at 128x128x3, 1,783 at 224x224x3), in order."""
    n = len(x)
    limit = max(1, min(FIT_SAMPLE, SAMPLE_BYTES // max(1, int(np.prod(x.shape[1:])))))
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).permutation(n)[:limit])


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
        if stream_choice(config, data_dir, record)[0] == "on":
            options["stream"] = True
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
