"""Builders of real-format test files: IDX, CIFAR pickles and tarballs, image folders."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: magic 0x0000 + dtype code + ndim, big-endian uint32 dims, big-endian values."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx_dataset(folder: Path, n_train=30, n_test=10, size=28, classes=10, gz=True, seed=0):
    """The four MNIST-layout files with random content; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = rng.integers(0, classes, n).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        arrays[prefix] = (images, labels)
    return arrays


def cifar_batch_bytes(images_hwc: np.ndarray, labels, label_key=b"labels", extra=None) -> bytes:
    """One batch in the canonical layout: rows of 1024 R, 1024 G, 1024 B values (CHW)."""
    batch = {
        b"batch_label": b"training batch 1 of 1",
        label_key: [int(v) for v in labels],
        b"data": images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images_hwc))],
    }
    batch.update(extra or {})
    return pickle.dumps(batch, protocol=2)  # the canonical files are protocol-2 pickles


def cifar10_files(n_per_batch=6, seed=0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """The files of ``cifar-10-batches-py`` (name -> bytes) and the images/labels they hold."""
    rng = np.random.default_rng(seed)
    files, truth = {}, {"train_x": [], "train_y": []}
    for i in range(1, 6):
        x = rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n_per_batch)
        files[f"data_batch_{i}"] = cifar_batch_bytes(x, y)
        truth["train_x"].append(x)
        truth["train_y"].append(y)
    truth = {k: np.concatenate(v) for k, v in truth.items()}
    truth["test_x"] = rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8)
    truth["test_y"] = rng.integers(0, 10, n_per_batch)
    files["test_batch"] = cifar_batch_bytes(truth["test_x"], truth["test_y"])
    names = [n.encode() for n in CIFAR10_NAMES]
    files["batches.meta"] = pickle.dumps(
        {b"label_names": names, b"num_cases_per_batch": n_per_batch, b"num_vis": 3072}, protocol=2
    )
    return files, truth


def write_folder(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A gzip tarball holding ``members`` (name -> bytes) and symlinks (name -> target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array).save(buffer, fmt)
    return buffer.getvalue()
