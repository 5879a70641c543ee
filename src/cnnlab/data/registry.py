"""The dataset registry: names -> loaders, ``load_dataset`` and ``list_datasets``.

A loader takes ``(data_dir, splits, options)`` and returns ``(train, test, class_names, meta)``;
``load_dataset`` adds the validation split, so every dataset splits the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cnnlab.data.sources import (
    CIFAR10,
    CIFAR10_JPG,
    CIFAR100,
    FASHION_MNIST,
    MNIST,
    Source,
    find_file,
    missing_files_error,
)
from cnnlab.data.splits import split_off_validation
from cnnlab.data.types import Dataset, DatasetInfo, Split
from cnnlab.errors import DataError
from cnnlab.paths import data_dir_is_explicit, resolve_data_dir

SPLITS = ("train", "test")
Loader = Callable[[Path, tuple, dict], "tuple[Split, Split, list[str], dict]"]


@dataclass(frozen=True)
class Entry:
    """A named dataset: how to describe it, where its files live and how to load them."""

    name: str
    description: str
    load: Loader
    source: Source | None = None  # canonical files under the data directory
    missing: Callable[[Path], list[str]] | None = None  # custom "which files are still missing"


_REGISTRY: dict[str, Entry] = {}
_ALIASES = {"fashion": "fashion_mnist", "cifar_10": "cifar10", "cifar_100": "cifar100", "cifar10jpg": "cifar10_jpg"}
PREFIXES = ("folder:", "idx:")


def register(entry: Entry) -> Entry:
    _REGISTRY[entry.name] = entry
    return entry


def dataset_names() -> list[str]:
    return [*(n for n in _REGISTRY if not n.endswith(":")), *(p + "PATH" for p in PREFIXES)]


def normalise_name(name: str) -> str:
    """``Fashion-MNIST`` -> ``fashion_mnist``; prefixed names (``folder:PATH``) are kept as given."""
    if name.startswith(PREFIXES):
        return name
    key = name.strip().lower().replace("-", "_")
    return _ALIASES.get(key, key)


def load_dataset(
    name: str,
    data_dir=None,
    val_split=None,
    *,
    download: bool = True,
    splits: tuple[str, ...] | list[str] = SPLITS,
    **options,
) -> Dataset:
    """Load a dataset by name: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``digits``,
    ``cifar10_jpg``, ``folder:PATH`` or ``idx:DIR``.

    ``val_split`` takes a fraction / count / ``"first:10%"`` / ``"last:10000"`` of the training
    split as validation data. ``splits`` limits what is read (``("test",)`` skips the training
    files; the missing split is then empty). Other ``options`` go to the loader.
    """
    splits = tuple(splits)
    if not splits or set(splits) - set(SPLITS):
        raise DataError(f"splits: expected a subset of train, test; got {', '.join(splits) or 'nothing'}")
    if val_split is not None and "train" not in splits:
        raise DataError("val_split: needs the train split loaded")
    key = normalise_name(name)
    if key.startswith(PREFIXES):
        prefix, _, target = key.partition(":")
        entry = _REGISTRY[f"{prefix}:"]
        root = _prefix_target(prefix, target, data_dir)
    else:
        entry = _REGISTRY.get(key)
        if entry is None or entry.name.endswith(":"):
            raise unknown_dataset(name)
        root = _dataset_folder(entry, data_dir, download, splits)
    train, test, class_names, meta = entry.load(root, splits, dict(options))
    meta = {"name": key, "splits": list(splits), **meta}
    val = None
    if val_split is not None:
        train, val, meta["val_split"] = split_off_validation(train, val_split)
    if "test" not in splits:
        test = None  # not asked for (loaders return an empty split); None also means "this dataset has none"
    return Dataset(key, train, val, test, list(class_names), meta)


def unknown_dataset(name: str) -> DataError:
    names = [n for n in _REGISTRY if not n.endswith(":")]
    close = difflib.get_close_matches(normalise_name(name), names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return DataError(f"unknown dataset {name!r}; {hint}known: {', '.join(dataset_names())}")


def check_data_dir(data_dir=None) -> Path:
    """The data directory; a DataError if the user set one that does not exist."""
    root = resolve_data_dir(data_dir)
    if data_dir_is_explicit(data_dir) and not root.is_dir():
        raise DataError(f"data directory {root} does not exist (set by --data-dir or $CNNLAB_DATA_DIR)")
    return root


def _dataset_folder(entry: Entry, data_dir, download: bool, splits: tuple = SPLITS) -> Path | None:
    """The folder holding ``entry``'s files, downloading what is missing when allowed."""
    if entry.source is None:
        return None
    folder = check_data_dir(data_dir) / entry.source.folder
    missing = missing_names(entry, folder, splits)
    if missing:
        if not download:
            raise missing_files_error(entry.source, folder, missing, "downloads are turned off")
        from cnnlab.data.download import fetch_missing

        specs = [spec for spec in entry.source.files if spec.name in missing]
        fetch_missing(entry.source, folder, specs)
    return folder


def missing_names(entry: Entry, folder: Path, splits: tuple = SPLITS) -> list[str]:
    """Files of ``entry`` (for ``splits``) not found in ``folder``."""
    if entry.missing is not None:
        return entry.missing(folder)
    return [
        spec.name for spec in entry.source.files if spec.split in (None, *splits) and find_file(folder, spec) is None
    ]


def _prefix_target(prefix: str, target: str, data_dir) -> Path:
    """``folder:PATH`` / ``idx:DIR``: PATH as given (relative to the working folder), else in the data dir."""
    if not target:
        raise DataError(f"{prefix}: expected a path after the colon, e.g. {prefix}:path/to/data")
    path = Path(target).expanduser()
    if path.exists() or path.is_absolute():
        if not path.exists():
            raise DataError(f"{prefix}:{target}: no such file or folder")
        return path
    inside = resolve_data_dir(data_dir) / path
    if inside.exists():
        return inside
    raise DataError(f"{prefix}:{target}: no such file or folder (looked in . and {inside.parent})")


def list_datasets(data_dir=None) -> list[DatasetInfo]:
    """Every named dataset, its files, whether they are present and where."""
    root = resolve_data_dir(data_dir)
    infos = []
    for entry in _REGISTRY.values():
        if entry.name.endswith(":"):
            infos.append(DatasetInfo(entry.name + "PATH", entry.description, [], True, None))
            continue
        if entry.source is None:
            infos.append(DatasetInfo(entry.name, entry.description, [], True, None))
            continue
        folder = root / entry.source.folder
        files = [spec.name for spec in entry.source.files]
        infos.append(DatasetInfo(entry.name, entry.description, files, not missing_names(entry, folder), folder))
    return infos


# ---------------------------------------------------------------------------------------------
# The built-in datasets.


def _load_mnist_like(source: Source, class_names: list[str]) -> Loader:
    def load(folder: Path, splits: tuple, options: dict):
        from cnnlab.data.mnist import load_source

        verify = bool(options.pop("verify", True))
        _no_options(source.folder, options)
        train, test, meta = load_source(source, folder, splits, verify)
        return train, test, class_names, meta

    return load


def _load_idx(folder: Path, splits: tuple, options: dict):
    from cnnlab.data.mnist import load_idx_dir

    names = options.pop("class_names", None)
    train, test, meta = _call_with_options(load_idx_dir, f"idx:{folder}", folder, splits, options=options)
    class_names = list(names) if names else [str(i) for i in range(meta["num_classes"])]
    if meta["num_classes"] > len(class_names):
        outside = sorted({int(v) for s in (train, test) for v in s.y[s.y >= len(class_names)]})
        raise DataError(
            f"idx:{folder}: label(s) {', '.join(map(str, outside[:5]))} outside the "
            f"{len(class_names)} class names given (labels must be 0..{len(class_names) - 1})"
        )
    return train, test, class_names, meta


def _load_digits(_: Path | None, splits: tuple, options: dict):
    from cnnlab.data.digits import DIGITS_CLASSES, load_digits_splits

    _no_options("digits", options)
    train, test, meta = load_digits_splits(splits)
    return train, test, DIGITS_CLASSES, meta


def _load_cifar(layout_name: str) -> Loader:
    def load(folder: Path, splits: tuple, options: dict):
        from cnnlab.data import cifar

        verify = bool(options.pop("verify", True))
        _no_options(layout_name, options)
        return cifar.load_cifar(getattr(cifar, layout_name), folder, splits, verify)

    return load


def _cifar_missing(layout_name: str):
    def missing(folder: Path) -> list[str]:
        from cnnlab.data import cifar

        return cifar.missing(getattr(cifar, layout_name), folder)

    return missing


def _load_folder(path: Path, splits: tuple, options: dict):
    from cnnlab.data.folder import load_folder

    return _call_with_options(load_folder, f"folder:{path}", path, splits, options=options)


def _load_cifar10_jpg(folder: Path, splits: tuple, options: dict):
    from cnnlab.data.folder import load_folder
    from cnnlab.data.sources import CIFAR10_JPG, verify_file

    tarball = folder / CIFAR10_JPG.files[0].name
    if options.pop("verify", True):
        verify_file(tarball, CIFAR10_JPG.files[0])
    options.setdefault("class_names", CIFAR10_JPG_CLASSES)
    return _call_with_options(load_folder, "cifar10_jpg", tarball, splits, options=options)


def _call_with_options(function, name: str, *args, options: dict):
    import inspect

    accepted = set(inspect.signature(function).parameters) - {"path", "folder", "splits"}
    unknown = set(options) - accepted
    if unknown:
        raise DataError(
            f"{name}: unknown option(s) {', '.join(sorted(unknown))}; accepted: {', '.join(sorted(accepted))}"
        )
    return function(*args, **options)


# CIFAR order (https://www.cs.toronto.edu/~kriz/cifar.html), which is also alphabetical.
CIFAR10_JPG_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _no_options(name: str, options: dict) -> None:
    if options:
        raise DataError(f"{name}: unknown option(s) {', '.join(sorted(options))}")


def _register_builtins() -> None:
    from cnnlab.data.mnist import FASHION_CLASSES, MNIST_CLASSES

    register(
        Entry(
            "mnist",
            "handwritten digits 0-9, 28x28 grayscale, 60k/10k (LeCun et al. 1998)",
            _load_mnist_like(MNIST, MNIST_CLASSES),
            MNIST,
        )
    )
    register(
        Entry(
            "fashion_mnist",
            "Zalando clothing photos, 10 classes, 28x28 grayscale, 60k/10k",
            _load_mnist_like(FASHION_MNIST, FASHION_CLASSES),
            FASHION_MNIST,
        )
    )
    register(Entry("digits", "scikit-learn's bundled 8x8 digits as 28x28, 1,438/359 (no download)", _load_digits))
    register(
        Entry(
            "cifar10",
            "CIFAR-10 python version: 32x32 colour photos, 10 classes, 50k/10k",
            _load_cifar("CIFAR10_LAYOUT"),
            CIFAR10,
            _cifar_missing("CIFAR10_LAYOUT"),
        )
    )
    register(
        Entry(
            "cifar100",
            "CIFAR-100 python version: 32x32 colour photos, 100 fine classes, 50k/10k",
            _load_cifar("CIFAR100_LAYOUT"),
            CIFAR100,
            _cifar_missing("CIFAR100_LAYOUT"),
        )
    )
    register(
        Entry("cifar10_jpg", "CIFAR-10 as JPEG class folders (lossy copy), 50k/10k", _load_cifar10_jpg, CIFAR10_JPG)
    )
    register(
        Entry(
            "folder:",
            "images in class folders: PATH/train/<class>/*, PATH/test/<class>/* "
            "(or PATH/<class>/*); PATH may be a .tar(.gz) or .zip",
            _load_folder,
        )
    )
    register(Entry("idx:", "any IDX dataset in the MNIST file layout (KMNIST, EMNIST...)", _load_idx))


_register_builtins()
