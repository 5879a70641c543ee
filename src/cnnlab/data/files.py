"""Image files as a lazy uint8 array: :class:`FileImages`, what a streamed split holds instead of pixels.

Separate from :mod:`cnnlab.data.streaming` so that the ``folder:`` loader can make one (streaming
itself lists folders with the loader's rules).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnnlab.data.images import check_resize, decode
from cnnlab.errors import DataError


def default_workers() -> int:
    """Decoding threads: the CPU cores this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_POOLS: dict = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """One shared decoding pool per worker count (threads are started once, not per batch)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="cnnlab-decode")
    return pool


class FileImages:
    """A uint8 image array ``(N, H, W, C)`` whose rows are image files, decoded when indexed.

    What ``cnnlab train --stream`` puts in a :class:`~cnnlab.data.types.Split` instead of the
    decoded array: ``len``, ``shape``, ``dtype`` and ``ndim`` are those of the array it stands
    for, and ``images[rows]`` (an int, a slice, an index or boolean array) decodes just those
    rows, in parallel over ``workers`` threads, with :func:`cnnlab.data.images.decode` (the
    pixels of the in-memory ``folder:`` loader). :meth:`subset` is a lazy ``images[index]``
    (what ``Split.take`` uses), so splitting and capping decode nothing. Nothing decoded is
    kept: memory is the rows asked for.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        image_size,
        channels: int = 3,
        resize: str = "squash",
        workers: int | None = None,
    ):
        self.files = [os.fspath(f) for f in files]
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if channels not in (1, 3):
            raise DataError(f"channels: expected 1 or 3, got {channels}")
        self.channels = int(channels)
        self.resize = check_resize(resize)
        self.workers = int(workers or default_workers())

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), *self.image_size, self.channels)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"FileImages({len(self)} files, shape={self.shape})"

    def subset(self, index) -> FileImages:
        """The rows at ``index`` (as NumPy indexes them), still undecoded."""
        rows = np.arange(len(self.files))[index]
        return FileImages(
            [self.files[i] for i in np.atleast_1d(rows)], self.image_size, self.channels, self.resize, self.workers
        )

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, tuple):  # images[rows, ...]: decode the rows, then index the rest
            return self[index[0]][(slice(None), *index[1:])]
        if isinstance(index, (int, np.integer)):
            return self.decode_rows(np.array([index]))[0]
        return self.decode_rows(np.arange(len(self.files))[index])

    def __array__(self, dtype=None, copy=None):  # np.asarray(images): every row (what streaming avoids)
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    def decode_rows(self, rows, pool: bool = True) -> np.ndarray:
        """The decoded images of ``rows`` (positions in this array), in parallel unless ``pool=False``."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        x = np.empty((len(rows), *self.image_size, self.channels), np.uint8)
        if not len(rows):
            return x

        def work(part):
            for k in part:
                name = self.files[rows[k]]
                x[k] = decode(name, self.image_size, self.channels, self.resize, name=name)

        if not pool or self.workers == 1 or len(rows) < 2:
            work(range(len(rows)))
            return x
        parts = np.array_split(np.arange(len(rows)), min(self.workers, len(rows)))
        for future in [_pool(self.workers).submit(work, part) for part in parts]:
            future.result()  # a file that does not decode: its DataError, naming it
        return x

    def digest(self) -> bytes:
        """What identifies the content cheaply: each file's path, size and modification time, and the
        decoding options (the checksum of a streamed split; decoding every image would cost an epoch)."""
        import hashlib

        digest = hashlib.sha256(repr((self.image_size, self.channels, self.resize)).encode())
        for name in self.files:
            st = os.stat(name)
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.digest()
