"""``folder:PATH``: labelled images in class folders, in a folder or a tar/zip archive.

Layouts (after dropping a single top-level folder, as archives of a folder usually have):
``train/<class>/*`` and ``test/<class>/*``, or ``<class>/*`` alone (a training split only; take a
validation split with ``val_split``). Classes are the folder names in sorted order (as Keras's
``image_dataset_from_directory`` orders them) unless ``class_names`` is given. Files whose
extension Pillow does not register as an image are ignored; an image that does not decode is a
DataError naming it, or with ``skip_bad=True`` is skipped and counted in ``meta``.

Decoded arrays are cached as ``.npz`` in :func:`cnnlab.paths.cache_dir`, keyed by the source's
path, size and modification time and the options, so the 60,000 JPEGs of the CIFAR-10 copy are
decoded once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from cnnlab.data import archives
from cnnlab.data.images import image_channels, open_image, to_array
from cnnlab.data.types import Split
from cnnlab.errors import DataError
from cnnlab.io import atomic_path
from cnnlab.paths import cache_dir

CACHE_VERSION = 1
SPLIT_FOLDERS = ("train", "test")
MAX_REPORTED_BAD = 5


def load_folder(path: Path, splits=("train", "test"), image_size=None, channels=None, color_mode=None,
                class_names=None, skip_bad: bool = False, cache: bool = True):
    """(train, test or None, class_names, meta) of a class-folder image set."""
    size = _size_option(image_size)
    channels = _channels_option(channels, color_mode)
    options = {"image_size": size, "channels": channels, "class_names": class_names, "skip_bad": bool(skip_bad)}
    cache_file = _cache_path(path, splits, options) if cache else None
    if cache_file is not None and cache_file.is_file():
        return _read_cache(cache_file)
    result = _decode_folder(path, splits, size, channels, class_names, bool(skip_bad))
    if cache_file is not None:
        _write_cache(cache_file, *result)
    return result


def _decode_folder(path: Path, splits, size, channels, class_names, skip_bad):
    names, read = _file_source(path)
    layout = plan(path, names, class_names)
    if not layout["has_splits"] and "train" not in splits:
        raise DataError(f"folder:{path}: has no test/ folder (only class folders); load the train split")
    wanted = {name: target for name, target in layout["files"].items()
              if target[0] in splits or not layout["has_splits"]}
    decoded, bad = {}, []
    for name in names:
        if name not in wanted:
            continue
        try:
            image = open_image(read(name), name=f"{path}:{name}")
        except DataError:
            if not skip_bad:
                raise
            bad.append(name)
            continue
        # Known target: convert now (small). Unknown: keep the native array until the first image decides.
        decoded[name] = to_array(image, size, channels) if size and channels else _native(image)
    if not decoded:
        raise DataError(f"folder:{path}: no readable images in the class folders")
    names = sorted(decoded)
    size = size or decoded[names[0]].shape[:2]
    channels = channels or decoded[names[0]].shape[2]
    classes = layout["class_names"]
    out = {}
    for split in SPLIT_FOLDERS:
        members = [n for n in names if wanted[n][0] == split]
        if split in splits and members:
            x = np.stack([_fit(decoded[n], size, channels) for n in members])
            y = np.array([classes.index(wanted[n][1]) for n in members], np.int64)
            out[split] = Split(x, y)
    empty = Split.empty((*size, channels))
    train = out.get("train", empty)
    test = out.get("test", empty if layout["has_splits"] and "test" in splits else None)
    meta = {"source": str(path), "layout": "train/ and test/ folders" if layout["has_splits"] else "class folders",
            "image_size": list(size), "channels": int(channels), "ignored_files": layout["ignored"],
            "skipped_bad": len(bad), "skipped_examples": bad[:MAX_REPORTED_BAD]}
    return train, test, classes, meta


def _file_source(path: Path):
    """(names, read(name) -> bytes): a folder is listed and read lazily, an archive read in one pass."""
    if path.is_dir():
        return list(archives.iter_names(path)), lambda name: (path / name).read_bytes()
    extensions = _image_extensions()
    contents = dict(archives.iter_files(path, keep=lambda n: os.path.splitext(n)[1].lower() in extensions))
    return list(contents), contents.pop


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def plan(path: Path, names: list[str], class_names=None) -> dict:
    """Map each image file to (split, class) from its path; decide the layout and the class list."""
    extensions = _image_extensions()
    visible = [n for n in names if not any(part.startswith(".") for part in n.split("/"))]  # no .DS_Store
    parts = [n.split("/") for n in visible]
    # Drop a single top-level folder (e.g. cifar10-jpg/) when there is structure below it.
    while parts and len({p[0] for p in parts}) == 1 and max(map(len, parts)) >= 3 and parts[0][0] not in SPLIT_FOLDERS:
        parts = [p[1:] for p in parts]
    has_splits = any(p[0] == "train" for p in parts if len(p) == 3)
    files, ignored = {}, len(names) - len(visible)
    for full, p in zip(visible, parts):
        depth_ok = len(p) == 3 and p[0] in SPLIT_FOLDERS if has_splits else len(p) == 2
        if not depth_ok or os.path.splitext(p[-1])[1].lower() not in extensions:
            ignored += 1
            continue
        files[full] = ("train" if not has_splits else p[0], p[-2])
    found = sorted({cls for _, cls in files.values()})
    if not found:
        raise DataError(f"folder:{path}: no images found; expected train/<class>/<image> and test/<class>/<image>, "
                        f"or <class>/<image>")
    if class_names is None:
        classes = found
    else:
        classes = [str(c) for c in class_names]
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"folder:{path}: class folder(s) {', '.join(unknown)} not in class_names")
    return {"files": files, "class_names": classes, "has_splits": has_splits, "ignored": ignored}


def _native(image) -> np.ndarray:
    """A decoded image as uint8 at its own size, in grayscale or RGB as it naturally is."""
    return to_array(image, None, image_channels(image))


def _fit(array: np.ndarray, size, channels) -> np.ndarray:
    """A decoded uint8 (H, W, C) array converted to ``size`` and ``channels`` if it differs."""
    from PIL import Image

    if array.shape == (*size, channels):
        return array
    return to_array(Image.fromarray(array[..., 0] if array.shape[2] == 1 else array), size, channels)


def _size_option(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        return (int(image_size), int(image_size))
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size: expected N or (height, width), got {image_size!r}") from None
    return (h, w)


def _channels_option(channels, color_mode):
    if color_mode is not None:
        modes = {"grayscale": 1, "gray": 1, "l": 1, "rgb": 3}
        if str(color_mode).lower() not in modes:
            raise DataError(f"color_mode: expected grayscale or rgb, got {color_mode!r}")
        return modes[str(color_mode).lower()]
    if channels is not None and int(channels) not in (1, 3):
        raise DataError(f"channels: expected 1 or 3, got {channels}")
    return None if channels is None else int(channels)


def _source_fingerprint(path: Path) -> list:
    """What identifies the source's content cheaply: path, size and mtime (of every file, for a folder)."""
    if path.is_dir():
        stats = []
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for file in sorted(files):
                st = os.stat(os.path.join(folder, file))
                stats.append((os.path.relpath(os.path.join(folder, file), path), st.st_size, st.st_mtime_ns))
        return [str(path.resolve()), hashlib.sha256(json.dumps(stats).encode()).hexdigest()]
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _cache_path(path: Path, splits, options: dict) -> Path:
    key = json.dumps([CACHE_VERSION, _source_fingerprint(path), sorted(splits), options], default=list)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir() / "folders" / f"{path.name}-{digest}.npz"


def _write_cache(file: Path, train: Split, test: Split | None, classes: list[str], meta: dict) -> None:
    arrays = {"train_x": train.x, "train_y": train.y, "class_names": np.array(classes, dtype=str),
              "meta": np.array(json.dumps(meta))}
    if test is not None:
        arrays.update(test_x=test.x, test_y=test.y)
    try:
        with atomic_path(file) as tmp:
            np.savez(tmp, **arrays)
    except OSError:
        pass  # a read-only or full cache only costs time next load


def _read_cache(file: Path):
    with np.load(file, allow_pickle=False) as npz:
        train = Split(npz["train_x"], npz["train_y"])
        test = Split(npz["test_x"], npz["test_y"]) if "test_x" in npz else None
        classes = [str(c) for c in npz["class_names"]]
        meta = json.loads(str(npz["meta"]))
    meta["cache"] = str(file)
    return train, test, classes, meta
