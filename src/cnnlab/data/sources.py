"""The canonical files of each named dataset: names, sizes, checksums and mirrors.

Checksums are the published ones (MNIST: http://yann.lecun.com/exdb/mnist/ via torchvision's
list; Fashion-MNIST: https://github.com/zalandoresearch/fashion-mnist README; CIFAR:
https://www.cs.toronto.edu/~kriz/cifar.html), and match the files in the shared data folder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from cnnlab.errors import DataError

MIRRORS_ENV = "CNNLAB_MIRRORS"


@dataclass(frozen=True)
class FileSpec:
    """One canonical file: its name, size in bytes and published digests."""

    name: str
    size: int
    md5: str
    sha256: str | None = None
    split: str | None = None  # "train" / "test" when the file holds only that split


@dataclass(frozen=True)
class Source:
    """Where a dataset's files live (folder under the data directory) and where to fetch them."""

    folder: str
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...]


MNIST = Source(
    folder="mnist",
    files=(
        FileSpec(
            "train-images-idx3-ubyte.gz",
            9912422,
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            split="train",
        ),
        FileSpec(
            "train-labels-idx1-ubyte.gz",
            28881,
            "d53e105ee54ea40749a09fcbcd1e9432",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            split="train",
        ),
        FileSpec(
            "t10k-images-idx3-ubyte.gz",
            1648877,
            "9fb629c4189551a2d022fa330f9573f3",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            split="test",
        ),
        FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            4542,
            "ec29112dd5afa0611ce80d1b7f02629c",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            split="test",
        ),
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)

FASHION_MNIST = Source(
    folder="fashion-mnist",
    files=(
        FileSpec(
            "train-images-idx3-ubyte.gz",
            26421880,
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            split="train",
        ),
        FileSpec(
            "train-labels-idx1-ubyte.gz",
            29515,
            "25c81989df183df01b3e8a0aad5dffbe",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            split="train",
        ),
        FileSpec(
            "t10k-images-idx3-ubyte.gz",
            4422102,
            "bef4ecab320f06d8554ea6380940ec79",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            split="test",
        ),
        FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            5148,
            "bb300cfdad3c16e7a12a480ee83cd310",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            split="test",
        ),
    ),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
)

CIFAR10 = Source(
    folder="cifar-10",
    files=(FileSpec("cifar-10-python.tar.gz", 170498071, "c58f30108f718f92721af3b95e74349a"),),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
)

CIFAR100 = Source(
    folder="cifar-100",
    files=(FileSpec("cifar-100-python.tar.gz", 169001437, "eb9058c3a382ffc7106e4002c42a8d85"),),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
)

# A repack of the CIFAR-10 images as JPEG folders (see the shared data README); no public mirror.
CIFAR10_JPG = Source(
    folder="cifar10-jpg",
    files=(FileSpec("cifar10-jpg.tar.gz", 19633070, "1d39bb80993bae8e3f18ddd052649872"),),
    mirrors=(),
)


def mirrors_for(source: Source) -> list[str]:
    """Base URLs to try in order: ``$CNNLAB_MIRRORS`` (comma/space separated) else the canonical ones."""
    env = os.environ.get(MIRRORS_ENV, "").replace(",", " ").split()
    return env or list(source.mirrors)


# (path, size, mtime_ns) of files already verified in this process: hashing 26 MB twice is wasted time.
_verified: set[tuple[str, int, int]] = set()


def file_digests(path: Path) -> tuple[str, str]:
    """MD5 and SHA-256 of a file, read in 1 MiB chunks."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def verify_file(path: Path, spec: FileSpec) -> None:
    """Check size, MD5 and SHA-256 against the published values; DataError naming the file if not."""
    stat = path.stat()
    if not S_ISREG(stat.st_mode):
        raise DataError(f"{path}: not a regular file; refusing to read it")
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    if stat.st_size != spec.size:
        what = "truncated" if stat.st_size < spec.size else "too long"
        raise DataError(f"{path}: {what}: {stat.st_size} bytes, expected {spec.size} (delete it to download again)")
    md5, sha256 = file_digests(path)
    if md5 != spec.md5 or (spec.sha256 is not None and sha256 != spec.sha256):
        raise DataError(f"{path}: checksum mismatch (md5 {md5}, expected {spec.md5}); not the canonical file")
    _verified.add(key)


def uncompressed_names(name: str) -> list[str]:
    """Other names a canonical ``.gz`` file is found under once decompressed.

    ``train-images-idx3-ubyte.gz`` -> ``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``
    (the latter is how several mirrors and packages spell it).
    """
    if not name.endswith(".gz"):
        return []
    plain = name[:-3]
    stem, _, kind = plain.rpartition("-idx")
    return [plain, f"{stem}.idx{kind}"] if stem else [plain]


def find_file(folder: Path, spec: FileSpec) -> tuple[Path, bool] | None:
    """The canonical file in ``folder`` (``(path, True)``), or an uncompressed form (``(path, False)``)."""
    path = folder / spec.name
    if os.path.lexists(path):  # a FIFO or device here is found, then refused by name when read
        return path, True
    for name in uncompressed_names(spec.name):
        if os.path.lexists(folder / name):
            return folder / name, False
    return None


def missing_files_error(source: Source, folder: Path, missing: list[str], reason: str = "") -> DataError:
    """The one-line 'files missing' error: which files, and which folder to put them in."""
    why = f" ({reason})" if reason else ""
    return DataError(f"{source.folder}: missing {', '.join(missing)}; download them into {folder}{why}")
