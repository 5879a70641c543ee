"""Streaming input: image files decoded and resized on the fly, for folders that do not fit in memory.

:func:`stream_batches` has the batch contract of :func:`cnnlab.data.batches`: it yields
``(x_batch, y_batch)`` (uint8 NHWC, int64) with the indices of
:func:`cnnlab.data.splits.batch_indices` (the order depends only on ``seed`` and ``epoch``), so a
streamed epoch holds the same images in the same batches as the in-memory path would, and a
resumed run repeats exactly. Batch ``i`` of epoch ``e`` is augmented with a generator seeded by
``[seed, e, i]``, as the training loop does for in-memory data, so the result does not depend
on which worker thread finished first.

How: a pool of ``workers`` threads, each decoding a whole batch with Pillow (Pillow releases the
GIL while it decodes and resizes, so the threads run in parallel), at most ``prefetch`` batches
decoded ahead of the consumer (bounded memory: ``prefetch x batch_size`` images), batches
delivered in order. Files are decoded by :func:`cnnlab.data.images.decode`, the same function as
the in-memory ``folder:`` loader and ``Preprocessing.load_images``, so the pixels are identical
(a large JPEG is decoded at a reduced scale by libjpeg first, which is most of the speed).

``cnnlab train --stream`` uses the same parts: each split's images are a
:class:`cnnlab.data.files.FileImages` (file names, decoded when indexed), and the training loop
makes its batches ahead with :func:`prefetched`, so the batch order and augmentation seeds are the
loop's own.

Why threads and Pillow rather than tf.data: ``benchmarks/streaming.py`` measures both on the
same files (docs/your-own-images.md has the figures); a thread pool keeps the pipeline the same
for the three Keras backends (tf.data needs TensorFlow installed and running even when training
on JAX or PyTorch), reuses the decoder the rest of cnnlab uses (tf.image decodes and resizes
differently, so streamed and in-memory pixels would differ), and needs no new dependency.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cnnlab.data.files import FileImages, default_workers
from cnnlab.data.images import check_resize, decode
from cnnlab.data.splits import batch_indices
from cnnlab.errors import DataError

__all__ = ["FileImages", "ImageStream", "default_workers", "list_image_files", "prefetched", "stream_batches"]


def prefetched(function, items, workers: int, depth: int):
    """``function(item)`` for each of ``items``, in order, computed up to ``depth`` items ahead by
    ``workers`` threads (bounded memory: ``depth`` results waiting). Closing the generator (or an
    error) cancels what is queued and waits for the threads."""
    pending: deque = deque()
    items = iter(items)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="cnnlab-stream")
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= depth:
                break
        while pending:
            result = pending.popleft().result()
            for item in items:  # top up before handing the result over, so decoding overlaps its use
                pending.append(pool.submit(function, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def list_image_files(path: str | os.PathLike, split: str = "train", class_names: Sequence[str] | None = None):
    """``(files, labels, class_names)`` of one split of a class-folder set on disk (no archive: a
    streamed set is read file by file). Same layouts, class order and checks as ``folder:``;
    files come in sorted path order (shuffle with ``stream_batches(shuffle=True)``)."""
    from cnnlab.data import archives
    from cnnlab.data.folder import FLAT_LAYOUT, plan

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: streaming reads a folder of images, not an archive; extract it first")
    layout = plan(root, list(archives.iter_names(root)))
    classes = layout["class_names"] if class_names is None else [str(c) for c in class_names]
    unknown = sorted(set(layout["class_names"]) - set(classes))
    if unknown:
        raise DataError(f"folder:{root}: class folder(s) {', '.join(unknown)} not in class_names")
    if layout["layout"] == FLAT_LAYOUT and split != "train":
        raise DataError(f"folder:{root}: has no {split}/ folder (only class folders)")
    names = sorted(n for n, (s, _) in layout["files"].items() if s == split)
    labels = np.array([classes.index(layout["files"][n][1]) for n in names], np.int64)
    return [str(root / n) for n in names], labels, classes


class ImageStream:
    """Batches of decoded, resized (and optionally augmented) images from files; see the module docstring.

    ``files`` and ``labels`` are parallel sequences; ``image_size`` is (H, W); ``channels`` 1 or 3.
    ``skip_bad=True`` drops a file that does not decode from its batch and counts it in
    ``skipped`` (its name in ``skipped_files``); otherwise it is a DataError naming the file.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        labels,
        image_size,
        channels: int = 3,
        *,
        resize: str = "squash",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        augmentation=None,
        workers: int | None = None,
        prefetch: int | None = None,
        drop_last: bool = False,
        skip_bad: bool = False,
    ):
        self.files = [os.fspath(f) for f in files]
        self.labels = np.asarray(labels, np.int64)
        if len(self.files) != len(self.labels):
            raise DataError(f"stream: {len(self.files)} files but {len(self.labels)} labels")
        if channels not in (1, 3):
            raise DataError(f"channels: expected 1 or 3, got {channels}")
        if batch_size < 1:
            raise DataError(f"batch_size: expected a positive integer, got {batch_size}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.resize = check_resize(resize)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.augmentation = augmentation
        self.workers = int(workers or default_workers())
        self.prefetch = int(prefetch or 2 * self.workers)
        if self.workers < 1 or self.prefetch < 1:
            raise DataError("stream: workers and prefetch must be positive")
        self.drop_last = bool(drop_last)
        self.skip_bad = bool(skip_bad)
        self.skipped = 0
        self.skipped_files: list[str] = []

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.files)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x_batch, y_batch)`` for ``epoch`` in order, decoding ahead in the worker threads."""
        indices = batch_indices(
            len(self.files),
            self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            drop_last=self.drop_last,
        )
        pending: deque = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="cnnlab-decode") as pool:
            try:
                for number, index in enumerate(indices):
                    pending.append(pool.submit(self._batch, index, epoch, number))
                    if len(pending) >= self.prefetch:
                        yield self._collect(pending.popleft().result())
                while pending:
                    yield self._collect(pending.popleft().result())
            finally:  # the consumer stopped early (or an error): drop what is queued
                for future in pending:
                    future.cancel()

    __call__ = epoch

    def _collect(self, result) -> tuple[np.ndarray, np.ndarray]:
        x, y, bad = result
        self.skipped += len(bad)
        self.skipped_files += bad
        return x, y

    def _batch(self, index: np.ndarray, epoch: int, number: int):
        x = np.empty((len(index), *self.image_size, self.channels), np.uint8)
        keep = np.ones(len(index), bool)
        bad = []
        for row, i in enumerate(index):
            name = self.files[i]
            try:
                x[row] = decode(name, self.image_size, self.channels, self.resize, name=name)
            except DataError:
                if not self.skip_bad:
                    raise
                keep[row] = False
                bad.append(name)
        y = self.labels[index]
        if not keep.all():
            x, y = x[keep], y[keep]
        if self.augmentation is not None and getattr(self.augmentation, "enabled", True):
            x = self.augmentation(x, np.random.default_rng([self.seed, epoch, number]))
        return x, y, bad


def stream_batches(
    files: Sequence[str | os.PathLike],
    labels,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    image_size,
    channels: int = 3,
    resize: str = "squash",
    augmentation=None,
    workers: int | None = None,
    prefetch: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`cnnlab.data.batches` for image files: ``(x_batch, y_batch)`` decoded on the fly."""
    stream = ImageStream(
        files,
        labels,
        image_size,
        channels,
        resize=resize,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        augmentation=augmentation,
        workers=workers,
        prefetch=prefetch,
        drop_last=drop_last,
    )
    return stream.epoch(epoch)
