"""Hostile and damaged datasets: IDX files, CIFAR pickles, image folders and archives.

Each case builds a real file in the format at hand with one thing wrong (a lie in a header, a
wrong type in a well-formed container, a FIFO or device where a file should be, an archive
member escaping the archive or too large) and asks ``cnnlab show`` for it, the cheapest
command that loads a dataset. Every case must refuse with exit 2 and one line naming the file,
allocate nothing the declared sizes ask for, never block, and leave every file as it was.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.data.helpers import cifar10_files, cifar_batch_bytes, idx_bytes, png_bytes, write_idx_dataset

# ----------------------------------------------------------------------------- IDX (idx:DIR)

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


def _header(code: int, dims) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _labels(n=30, dtype=np.uint8):
    return np.arange(n).astype(dtype) % 10


IDX_CASES = {
    # name: (file to write, its bytes, text the error names besides the file)
    "bad-magic": (IMAGES, b"\x01\x02\x08\x03" + bytes(12), "magic"),
    "short-header": (IMAGES, bytes([0, 0, 8, 3]) + bytes(5), "header"),
    "huge-dims": (IMAGES, _header(8, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)), "limit"),
    "many-dims": (IMAGES, _header(8, (0xFFFF,) * 40), "limit"),
    "huge-float64-dims": (IMAGES, _header(0x0E, (100_000, 100_000, 100_000)), "limit"),
    "truncated-data": (IMAGES, idx_bytes(np.zeros((30, 28, 28), np.uint8))[:-100], "bytes"),
    "trailing-data": (IMAGES, idx_bytes(np.zeros((30, 28, 28), np.uint8)) + b"xx", "bytes"),
    "float-images": (IMAGES, idx_bytes(np.zeros((30, 28, 28), np.float32), 0x0D), "uint8"),
    "2d-images": (IMAGES, idx_bytes(np.zeros((30, 784), np.uint8)), "uint8"),
    "zero-size-images": (IMAGES, idx_bytes(np.zeros((30, 0, 0), np.uint8)), "hold nothing"),
    "label-count": (LABELS, idx_bytes(_labels(29)), "labels"),
    "huge-label": (LABELS, idx_bytes(np.full(30, 2**31 - 1, np.int32), 0x0C), "classes"),
    "negative-label": (LABELS, bytes([0, 0, 9, 1]) + struct.pack(">I", 30) + b"\xff" * 30, "negative"),
    "2d-labels": (LABELS, idx_bytes(np.zeros((30, 2), np.uint8)), "labels"),
    "float-labels": (LABELS, idx_bytes(np.zeros(30, np.float32), 0x0D), "integer"),
    "empty-images": (IMAGES, b"", "short"),
    "empty-labels": (LABELS, b"", "short"),
}


def _idx_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "idxset"
    write_idx_dataset(folder, n_train=30, n_test=10, gz=False)
    return folder


@pytest.mark.parametrize("case", sorted(IDX_CASES))
def test_idx_header_and_contents(tmp_path, clean_error, case):
    folder = _idx_folder(tmp_path)
    name, data, needle = IDX_CASES[case]
    (folder / name).write_bytes(data)
    clean_error(["show", f"idx:{folder}", "--out", tmp_path / "grid.png"], [folder / name, needle], protect=[folder])
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("case", ["fifo", "folder", "device"])
@pytest.mark.parametrize("name", [IMAGES, LABELS])
def test_idx_not_a_regular_file(tmp_path, clean_error, case, name):
    folder = _idx_folder(tmp_path)
    path = folder / name
    path.unlink()
    if case == "fifo":
        os.mkfifo(path)
    elif case == "folder":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")
    needles = [folder] if case == "folder" else [path, "regular file"]
    clean_error(["show", f"idx:{folder}", "--out", tmp_path / "grid.png"], needles, protect=[folder])


GZ_CASES = {
    "truncated": lambda data: gzip.compress(data)[:-40],
    "not-gzip": lambda data: data,
    "garbage": lambda data: b"\x1f\x8b\x08\x00" + bytes(range(200)),
    "bomb": lambda data: gzip.compress(bytes(3 << 20)),  # 3 MiB of zeros in 3 KB, against a 2 MiB limit
}


@pytest.mark.parametrize("case", sorted(GZ_CASES))
def test_idx_gzip(tmp_path, clean_error, monkeypatch, case):
    monkeypatch.setenv("CNNLAB_MAX_FILE_BYTES", str(2 << 20))
    folder = _idx_folder(tmp_path)
    plain = folder / IMAGES
    data = plain.read_bytes()
    plain.unlink()
    (folder / f"{IMAGES}.gz").write_bytes(GZ_CASES[case](data))
    clean_error(["show", f"idx:{folder}", "--out", tmp_path / "grid.png"], [folder / f"{IMAGES}.gz"], protect=[folder])


def test_idx_uncompressed_over_the_file_limit(tmp_path, clean_error, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_FILE_BYTES", "10000")
    folder = _idx_folder(tmp_path)
    clean_error(["show", f"idx:{folder}", "--out", tmp_path / "grid.png"], [folder / IMAGES, "limit"], protect=[folder])


# ----------------------------------------------------------------------------- CIFAR pickles (cifar10)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def _batch(**changes) -> bytes:
    x = np.zeros((6, 32, 32, 3), np.uint8)
    batch = pickle.loads(cifar_batch_bytes(x, [1, 2, 3, 4, 5, 6]))
    for key, value in changes.items():
        if value is _DROP:
            del batch[key.encode()]
        else:
            batch[key.encode()] = value
    return pickle.dumps(batch, protocol=2)


_DROP = object()
_BINBYTES8_HUGE = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"abc"

CIFAR_CASES = {
    # name: (file, bytes)
    "evil-global": ("data_batch_2", pickle.dumps({b"data": _Evil()}, protocol=2)),
    "list-not-dict": ("data_batch_2", pickle.dumps([1, 2, 3], protocol=2)),
    "no-data": ("data_batch_2", _batch(data=_DROP)),
    "no-labels": ("data_batch_2", _batch(labels=_DROP)),
    "float-data": ("data_batch_2", _batch(data=np.zeros((6, 3072), np.float32))),
    "short-rows": ("data_batch_2", _batch(data=np.zeros((6, 100), np.uint8))),
    "data-list": ("data_batch_2", _batch(data=[[0] * 3072] * 6)),
    "labels-text": ("data_batch_2", _batch(labels=[b"cat"] * 6)),
    "labels-float": ("data_batch_2", _batch(labels=[1.5] * 6)),
    "labels-out-of-range": ("data_batch_2", _batch(labels=[10] * 6)),
    "labels-negative": ("data_batch_2", _batch(labels=[-1] * 6)),
    "labels-count": ("data_batch_2", _batch(labels=[1] * 5)),
    "labels-huge": ("data_batch_2", _batch(labels=[2**70] * 6)),
    "labels-bool": ("data_batch_2", _batch(labels=[True] * 6)),
    "labels-nested": ("data_batch_2", _batch(labels=[[1]] * 6)),
    "truncated": ("data_batch_2", _batch()[:200]),
    "garbage": ("data_batch_2", bytes(range(256)) * 8),
    "empty": ("data_batch_2", b""),
    "binbytes-huge": ("data_batch_2", _BINBYTES8_HUGE),
    "meta-no-names": ("batches.meta", pickle.dumps({b"num_vis": 3072}, protocol=2)),
    "meta-names-empty": ("batches.meta", pickle.dumps({b"label_names": []}, protocol=2)),
    "meta-names-numbers": ("batches.meta", pickle.dumps({b"label_names": list(range(10))}, protocol=2)),
    "meta-names-not-utf8": ("batches.meta", pickle.dumps({b"label_names": [b"\xff\xfe"] * 10}, protocol=2)),
    "meta-huge-class-count": ("batches.meta", pickle.dumps({b"label_names": [b"c"] * 200_000}, protocol=2)),
}


def _cifar_dir(tmp_path: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "data"
    folder = data_dir / "cifar-10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    files, _ = cifar10_files(n_per_batch=6)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return data_dir, folder


@pytest.mark.parametrize("case", sorted(CIFAR_CASES))
def test_cifar_pickles(tmp_path, clean_error, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    data_dir, folder = _cifar_dir(tmp_path)
    name, content = CIFAR_CASES[case]
    (folder / name).write_bytes(content)
    clean_error(["--data-dir", data_dir, "show", "cifar10", "--out", tmp_path / "grid.png"], [name], protect=[data_dir])
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("case", ["fifo", "folder", "device", "missing"])
def test_cifar_batch_not_a_file(tmp_path, clean_error, case):
    data_dir, folder = _cifar_dir(tmp_path)
    path = folder / "data_batch_3"
    path.unlink()
    if case == "fifo":
        os.mkfifo(path)
    elif case == "folder":
        path.mkdir()
    elif case == "device":
        path.symlink_to("/dev/zero")
    clean_error(
        ["--data-dir", data_dir, "show", "cifar10", "--out", tmp_path / "grid.png"],
        ["data_batch_3"],
        protect=[data_dir],
    )


def test_cifar_batch_over_the_member_limit(tmp_path, clean_error, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_MEMBER_BYTES", "20000")
    data_dir, folder = _cifar_dir(tmp_path)
    clean_error(
        ["--data-dir", data_dir, "show", "cifar10", "--out", tmp_path / "grid.png"], ["limit"], protect=[data_dir]
    )


# ----------------------------------------------------------------------------- image folders (folder:PATH)


def _png(value=0, size=(8, 8)):
    return png_bytes(np.full((*size, 1), value, np.uint8))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height (grayscale, 8 bit) and whose data is empty."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _jpeg_truncated():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:300]


FOLDER_FILES = {
    "text-as-png": b"this is not an image\n",
    "empty-png": b"",
    "truncated-png": _png(5, (64, 64))[:60],
    "truncated-jpeg": None,  # filled below (needs Pillow at collection time: cheap)
    "bomb-header": _png_header(100_000, 100_000),
    "zero-width": _png_header(0, 10),
    "garbage-gif": b"GIF89a" + bytes(range(200)),
    "png-bad-crc": None,  # filled below: a content byte of IDAT flipped
}
FOLDER_SUFFIX = {"truncated-jpeg": ".jpg", "garbage-gif": ".gif"}


def _png_bad_crc() -> bytes:
    data = bytearray(_png(5, (16, 16)))
    data[data.find(b"IDAT") + 6] ^= 0xFF
    return bytes(data)


def _image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                (root / split / cls / f"{i}.png").write_bytes(_png(i * 40))
    return root


@pytest.mark.parametrize("case", sorted(FOLDER_FILES))
def test_folder_bad_image(tmp_path, clean_error, case):
    root = _image_folder(tmp_path)
    content = {"truncated-jpeg": _jpeg_truncated, "png-bad-crc": _png_bad_crc}.get(case, lambda: FOLDER_FILES[case])()
    path = root / "train" / "dog" / f"bad{FOLDER_SUFFIX.get(case, '.png')}"
    path.write_bytes(content)
    clean_error(["show", f"folder:{root}", "--out", tmp_path / "grid.png"], [path.name], protect=[root])


@pytest.mark.parametrize("case", ["fifo", "device", "socket-like-dir"])
def test_folder_special_files_are_never_opened(tmp_path, capsys, case):
    """Finding 5: a FIFO named like an image blocked forever; special files are now passed over."""
    from tests.reliability.conftest import call_cli

    root = _image_folder(tmp_path)
    path = root / "train" / "dog" / "z.png"
    if case == "fifo":
        os.mkfifo(path)
    elif case == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    code, out, err = call_cli(capsys, "show", f"folder:{root}", "--out", tmp_path / "grid.png")
    assert code == 0, err
    assert (tmp_path / "grid.png").is_file()


def test_folder_of_only_special_files(tmp_path, clean_error):
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    os.mkfifo(root / "cat" / "a.png")
    (root / "cat" / "b.png").symlink_to("/dev/zero")
    clean_error(["show", f"folder:{root}", "--out", tmp_path / "grid.png"], [root, "no images"], protect=[root])


def test_folder_image_over_the_pixel_limit(tmp_path, clean_error, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_IMAGE_PIXELS", "50")
    root = _image_folder(tmp_path)
    clean_error(["show", f"folder:{root}", "--out", tmp_path / "grid.png"], ["pixels"], protect=[root])


def test_folder_empty(tmp_path, clean_error):
    root = tmp_path / "images"
    (root / "train" / "cat").mkdir(parents=True)
    clean_error(["show", f"folder:{root}", "--out", tmp_path / "grid.png"], [root], protect=[root])


# ----------------------------------------------------------------------------- archives (folder:ARCHIVE)


def _tar(path: Path, members: list[tarfile.TarInfo], contents: dict[str, bytes] | None = None, mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info in members:
            data = (contents or {}).get(info.name)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info


def _good_members():
    members, contents = [], {}
    for cls in ("cat", "dog"):
        for i in range(2):
            name = f"set/train/{cls}/{i}.png"
            contents[name] = _png(i * 60)
            members.append(_member(name, contents[name]))
    return members, contents


TAR_CASES = {
    "dotdot": lambda: [_member("set/../../evil.png", _png())],
    "absolute": lambda: [_member("/tmp/evil.png", _png())],
    "symlink-out": lambda: [_member("set/train/cat/l.png", kind=tarfile.SYMTYPE, link="../../../../etc/passwd")],
    "symlink-absolute": lambda: [_member("set/train/cat/l.png", kind=tarfile.SYMTYPE, link="/etc/passwd")],
    "hardlink-out": lambda: [_member("set/train/cat/h.png", kind=tarfile.LNKTYPE, link="../../etc/passwd")],
    "fifo-member": lambda: [_member("set/train/cat/f.png", kind=tarfile.FIFOTYPE)],
    "device-member": lambda: [_member("set/train/cat/d.png", kind=tarfile.CHRTYPE)],
}


@pytest.mark.parametrize("case", sorted(TAR_CASES))
def test_tar_hostile_members(tmp_path, clean_error, case):
    members, contents = _good_members()
    for info in TAR_CASES[case]():
        members.append(info)
        if info.type == tarfile.REGTYPE:
            contents[info.name] = _png()
    archive = _tar(tmp_path / "set.tar.gz", members, contents)
    clean_error(["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive], protect=[tmp_path])
    assert not Path("/tmp/evil.png").exists()


def test_tar_member_over_the_limit_is_refused_before_reading(tmp_path, clean_error, monkeypatch):
    """Finding 5: a small archive holding a huge member is refused from the member's header."""
    monkeypatch.setenv("CNNLAB_MAX_MEMBER_BYTES", str(1 << 20))
    members, contents = _good_members()
    big = "set/train/cat/big.png"
    contents[big] = _png() + bytes(4 << 20)  # 4 MiB of zeros: a few KB compressed
    members.append(_member(big, contents[big]))
    archive = _tar(tmp_path / "set.tar.gz", members, contents)
    assert archive.stat().st_size < 100_000
    clean_error(
        ["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive, "big.png", "limit"], protect=[tmp_path]
    )


def test_tar_total_over_the_archive_limit(tmp_path, clean_error, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_ARCHIVE_BYTES", "150")
    members, contents = _good_members()
    archive = _tar(tmp_path / "set.tar.gz", members, contents)
    clean_error(["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive, "limit"], protect=[tmp_path])


@pytest.mark.parametrize("case", ["truncated", "garbage", "empty", "fifo", "plain-tar-truncated"])
def test_tar_damaged(tmp_path, clean_error, case):
    members, contents = _good_members()
    archive = tmp_path / ("set.tar" if case == "plain-tar-truncated" else "set.tar.gz")
    if case == "fifo":
        os.mkfifo(archive)
    else:
        _tar(archive, members, contents, mode="w" if case == "plain-tar-truncated" else "w:gz")
        data = archive.read_bytes()
        archive.write_bytes(
            {
                "truncated": data[: len(data) // 2],
                "garbage": bytes(range(256)) * 10,
                "empty": b"",
                "plain-tar-truncated": data[:700],
            }[case]
        )
    clean_error(["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive], protect=[tmp_path])


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _zip_members():
    return {f"set/train/{cls}/{i}.png": _png(i * 60) for cls in ("cat", "dog") for i in range(2)}


@pytest.mark.parametrize("case", ["dotdot", "absolute", "backslash-dotdot", "drive-letter"])
def test_zip_hostile_names(tmp_path, clean_error, case):
    members = _zip_members()
    name = {
        "dotdot": "set/../../evil.png",
        "absolute": "/tmp/evil.png",
        "backslash-dotdot": "set\\..\\..\\evil.png",
        "drive-letter": "C:/evil.png",
    }[case]
    members[name] = _png()
    archive = _zip(tmp_path / "set.zip", members)
    clean_error(["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive], protect=[tmp_path])


def test_zip_member_declared_over_the_limit(tmp_path, clean_error, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_MEMBER_BYTES", str(1 << 20))
    members = _zip_members()
    members["set/train/cat/big.png"] = _png() + bytes(4 << 20)
    archive = _zip(tmp_path / "set.zip", members)
    clean_error(
        ["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive, "big.png", "limit"], protect=[tmp_path]
    )


@pytest.mark.parametrize("case", ["truncated", "garbage", "bad-crc", "unknown-compression", "size-lie"])
def test_zip_damaged(tmp_path, clean_error, case):
    archive = _zip(tmp_path / "set.zip", _zip_members(), compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    if case == "truncated":
        data = data[: len(data) // 2]
    elif case == "garbage":
        data = bytearray(b"PK\x03\x04" + bytes(range(256)) * 4)
    elif case == "bad-crc":
        start = data.find(b"\x89PNG") + 20
        data[start] ^= 0xFF  # stored member: flip a content byte, the CRC no longer matches
    elif case == "unknown-compression":
        for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
            at = data.find(signature)
            while at >= 0:
                data[at + offset : at + offset + 2] = struct.pack("<H", 99)
                at = data.find(signature, at + 4)
    else:  # the central directory says each member is 4 GB: refused from the header alone
        at = data.find(b"PK\x01\x02")
        while at >= 0:
            data[at + 24 : at + 28] = struct.pack("<I", 0xFFFFFFF0)
            at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))
    clean_error(["show", f"folder:{archive}", "--out", tmp_path / "grid.png"], [archive], protect=[tmp_path])
