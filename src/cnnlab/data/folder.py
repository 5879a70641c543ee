"""``folder:PATH``: labelled images in class folders, in a folder or a tar/zip archive.

Layouts (after dropping a single top-level folder, as archives of a folder usually have):
``train/<class>/*`` and ``test/<class>/*``, or ``<class>/*`` alone (a training split only; take a
validation split with ``val_split``). Classes are the folder names in sorted order (as Keras's
``image_dataset_from_directory`` orders them) unless ``class_names`` gives the order. Files are
read in class order, then every split is put in one fixed pseudo-random order (the same on every
load), so that ``val_split="first:10%"`` is a mixed sample, as it is on canonical CIFAR-10 whose
batches are stored shuffled, and not one class. Files whose
extension Pillow does not register as an image are ignored; an image that does not decode is a
DataError naming it, or with ``skip_bad=True`` is skipped and counted in ``meta``. A class folder
without images, or a single class, is a DataError (a classifier needs two classes or more).

Images of mixed sizes and colour modes are converted to one size and mode, and ``meta`` counts
them (``source_sizes``, ``source_modes``, ``resized``, ``converted``). Without ``channels`` the
first image (in sorted path order) sets the mode. Without ``image_size`` the median size of (up to
1,000 evenly spaced) images is used (median shorter and longer sides, in the orientation of most
images), scaled down to at most ``MAX_DEFAULT_SIDE``
(128) pixels on the longer side, keeping the aspect ratio; when that differs from the images'
own size, ``meta["notes"]`` says so, for the caller to announce. ``resize`` is the resize policy
(``squash``, ``center-crop``, ``pad``: :mod:`cnnlab.data.images`).

Decoded splits are cached, one ``.npz`` per split, in :func:`cnnlab.paths.cache_dir`, keyed by the
source's path, size and modification time and the decoding options, so the 60,000 JPEGs of the
CIFAR-10 copy are decoded once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from cnnlab.data import archives
from cnnlab.data.images import SOURCE_SIZE, check_resize, image_channels, open_image, to_array
from cnnlab.data.types import Split
from cnnlab.errors import DataError
from cnnlab.io import atomic_path, read_regular_bytes
from cnnlab.paths import cache_dir

CACHE_VERSION = 4
SPLIT_FOLDERS = ("train", "test")
MAX_REPORTED_BAD = 5
MAX_DEFAULT_SIDE = 128  # the longer side of the default image size for folders of large photos
SIZE_SAMPLE = 1000  # images whose header is read to choose the default image size
FLAT_LAYOUT, SPLIT_LAYOUT = "class folders", "train/ and test/ folders"


def load_folder(
    path: Path,
    splits=("train", "test"),
    image_size=None,
    channels=None,
    color_mode=None,
    class_names=None,
    skip_bad: bool = False,
    cache: bool = True,
    resize: str = "squash",
    list_files: bool = False,
    stream: bool = False,
):
    """(train, test or None, class_names, meta) of a class-folder image set.

    ``list_files`` adds ``meta["files"]``: {split: the file name of each image, in split order}.
    ``stream=True`` decodes nothing: each split's images are a
    :class:`cnnlab.data.files.FileImages` over the same files in the same order (a folder on
    disk only, not an archive; no ``skip_bad``, since a bad file is only found when decoded).
    """
    options = {
        "image_size": _size_option(image_size),
        "channels": _channels_option(channels, color_mode),
        "skip_bad": bool(skip_bad),
        "resize": check_resize(resize),
    }
    if stream:
        return _assemble(path, _stream_folder(path, splits, **options), class_names, list_files)
    fingerprint = _source_fingerprint(path) if cache else None
    loaded = {s: _read_cache(_cache_path(fingerprint, s, options)) for s in splits} if cache else {}
    loaded = {s: part for s, part in loaded.items() if part is not None}
    if any(part[2]["layout"] == FLAT_LAYOUT for part in loaded.values()):
        splits = tuple(s for s in splits if s == "train")  # a flat set has no test split to decode
    todo = tuple(s for s in splits if s not in loaded)
    if todo:
        for split, part in _decode_folder(path, todo, **options).items():
            loaded[split] = part
            if cache:
                _write_cache(_cache_path(fingerprint, split, options), *part)
    return _assemble(path, loaded, class_names, list_files)


def _assemble(path: Path, loaded: dict, class_names, list_files: bool = False):
    """Combine the loaded splits; relabel if the caller fixed the class order."""
    found = next(iter(loaded.values()))[1]
    classes = found if class_names is None else [str(c) for c in class_names]
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"folder:{path}: class folder(s) {', '.join(unknown)} not in class_names")
    relabel = np.array([classes.index(c) for c in found], np.int64)
    orders = {s: _interleave_order(len(part[0])) for s, part in loaded.items()}
    parts = {s: Split(part[0].x, relabel[part[0].y]).take(orders[s]) for s, part in loaded.items()}
    metas = [part[2] for part in loaded.values()]
    meta = {key: metas[0][key] for key in ("source", "layout", "image_size", "channels", "ignored_files")}
    meta["skipped_bad"] = sum(m["skipped_bad"] for m in metas)
    meta["skipped_examples"] = sum((m["skipped_examples"] for m in metas), [])[:MAX_REPORTED_BAD]
    for key in ("resized", "converted", "source_sizes", "source_modes"):
        meta[key] = _merge_counts([m.get(key, 0) for m in metas])
    meta["notes"] = metas[0].get("notes", [])
    if metas[0].get("streamed"):  # nothing decoded yet: no counts of sizes and modes
        meta["streamed"] = True
        for key in ("resized", "converted", "source_sizes", "source_modes"):
            del meta[key]
    if list_files:
        meta["files"] = {s: [part[2]["files"][i] for i in orders[s]] for s, part in loaded.items()}
    caches = [m["cache"] for m in metas if "cache" in m]
    if caches:
        meta["cache"] = caches  # the splits that came from the cache
    empty = Split.empty((*meta["image_size"], meta["channels"]))
    test = parts.get("test", None if meta["layout"] == FLAT_LAYOUT else empty)
    return parts.get("train", empty), test, classes, meta


def _interleave_order(n: int) -> np.ndarray:
    """A fixed pseudo-random order (seed 0) of a split's images, so the classes are mixed."""
    return np.random.default_rng(0).permutation(n)


def _merge_counts(values: list):
    """Sum numbers, or {key: count} dicts key by key."""
    if all(isinstance(v, (int, np.integer)) for v in values):
        return int(sum(values))
    total: dict = {}
    for value in values:
        for key, count in (value or {}).items():
            total[key] = total.get(key, 0) + count
    return dict(sorted(total.items(), key=lambda item: -item[1]))


def _plan_source(path: Path, splits: tuple, image_size, channels):
    """What both loaders decide before reading pixels: the file reader, the layout, the splits there
    are, the image size (the announced default when not given) and the colour mode (the first image
    in path order decides). Returns ``(read, layout, splits, image_size, channels, notes)``."""
    names, read = _file_source(path)
    layout = plan(path, names)
    if layout["layout"] == FLAT_LAYOUT:
        if "train" not in splits:
            raise DataError(f"folder:{path}: has no test/ folder (only class folders); load the train split")
        splits = ("train",)
    notes = []
    if image_size is None:
        image_size, note = default_image_size(path, sorted(layout["files"]), read)
        notes += [note] if note else []
    if channels is None:
        first = min(layout["files"])
        channels = image_channels(open_image(read(first, keep=True), name=f"{path}:{first}"))
    return read, layout, splits, image_size, channels, notes


def _decode_folder(path: Path, splits: tuple, image_size, channels, skip_bad, resize="squash") -> dict:
    """{split: (Split, folder class names, meta)} for ``splits``, decoded from the source."""
    read, layout, splits, image_size, channels, notes = _plan_source(path, splits, image_size, channels)
    classes = layout["class_names"]
    result = {}
    for split in splits:
        members = sorted(n for n, (s, _) in layout["files"].items() if s == split)
        arrays, labels, bad, kept = [], [], [], []
        sizes, modes, resized, converted = {}, {}, 0, 0
        for name in members:
            try:
                image = open_image(read(name), name=f"{path}:{name}", size=image_size, resize=resize)
            except DataError:
                if not skip_bad:
                    raise
                bad.append(name)
                continue
            # The size before any reduced-scale JPEG decoding (draft); the mode as stored.
            width, height = image.info.get(SOURCE_SIZE, image.size)
            key = f"{height}x{width}"
            sizes[key] = sizes.get(key, 0) + 1
            modes[image.mode] = modes.get(image.mode, 0) + 1
            resized += (height, width) != tuple(image_size)
            converted += image_channels(image) != channels or image.mode not in ("L", "RGB")
            arrays.append(to_array(image, image_size, channels, resize))
            labels.append(classes.index(layout["files"][name][1]))
            kept.append(name)
        x = np.stack(arrays) if arrays else np.zeros((0, *image_size, channels), np.uint8)
        meta = {
            "source": str(path),
            "layout": layout["layout"],
            "image_size": list(image_size),
            "channels": int(channels),
            "ignored_files": layout["ignored"],
            "skipped_bad": len(bad),
            "skipped_examples": bad[:MAX_REPORTED_BAD],
            "resized": int(resized),
            "converted": int(converted),
            "source_sizes": sizes,
            "source_modes": modes,
            "notes": notes,
            "files": kept,
        }
        result[split] = (Split(x, np.array(labels, np.int64)), classes, meta)
    return result


def _stream_folder(path: Path, splits: tuple, image_size, channels, skip_bad, resize) -> dict:
    """{split: (Split of FileImages, folder class names, meta)}: what _decode_folder returns, undecoded."""
    from cnnlab.data.files import FileImages

    if not path.is_dir():
        raise DataError(f"folder:{path}: streaming reads a folder of image files, not an archive; extract it first")
    if skip_bad:
        raise DataError(
            f"folder:{path}: skip_bad needs the images decoded up front; it does not combine with streaming"
        )
    read, layout, splits, image_size, channels, notes = _plan_source(path, splits, image_size, channels)
    classes = layout["class_names"]
    result = {}
    for split in splits:
        members = sorted(n for n, (s, _) in layout["files"].items() if s == split)
        labels = np.array([classes.index(layout["files"][n][1]) for n in members], np.int64)
        images = FileImages([path / n for n in members], image_size, channels, resize)
        meta = {
            "source": str(path),
            "layout": layout["layout"],
            "image_size": list(image_size),
            "channels": int(channels),
            "ignored_files": layout["ignored"],
            "skipped_bad": 0,
            "skipped_examples": [],
            "notes": notes,
            "files": members,
            "streamed": True,
        }
        result[split] = (Split(images, labels), classes, meta)
    return result


def default_image_size(path: Path, names: list[str], read) -> tuple[tuple[int, int], str | None]:
    """The median (H, W) of up to SIZE_SAMPLE evenly spaced images (headers only), the longer side
    capped at MAX_DEFAULT_SIDE; and a note to announce when it is not every image's own size."""
    from PIL import Image, UnidentifiedImageError

    step = max(1, len(names) // SIZE_SAMPLE)
    sizes = []
    for name in names[::step][:SIZE_SAMPLE]:
        try:
            data = read(name, keep=True)
            with Image.open(io.BytesIO(data)) as image:  # reads the header, decodes nothing
                sizes.append((image.size[1], image.size[0]))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # a bad file is reported when it is decoded
    if not sizes:
        first = min(names)
        image = open_image(read(first, keep=True), name=f"{path}:{first}")  # raises, naming the file
        sizes = [(image.size[1], image.size[0])]
    heights, widths = np.array(sizes).T
    short, long = int(np.median(np.minimum(heights, widths))), int(np.median(np.maximum(heights, widths)))
    portrait = np.sum(heights > widths) > np.sum(widths > heights)  # the orientation of most images
    height, width = (long, short) if portrait else (short, long)
    scale = min(1.0, MAX_DEFAULT_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if len(set(sizes)) == 1 and size == sizes[0]:
        return size, None
    how = "mixed sizes" if len(set(sizes)) > 1 else f"{sizes[0][0]}x{sizes[0][1]} images"
    capped = f", scaled to at most {MAX_DEFAULT_SIDE} pixels a side" if scale < 1 else ""
    return size, (
        f"folder:{path}: {how} (median {height}x{width}{capped}); images are resized to "
        f"{size[0]}x{size[1]}; choose another size with image_size (--image-size)"
    )


def _file_source(path: Path):
    """(names, read(name) -> bytes): a folder is listed and read lazily; an archive is read in one
    pass (a .tar.gz has no random access), keeping only files with image extensions in memory."""
    if path.is_dir():
        return list(archives.iter_names(path)), lambda name, keep=False: read_regular_bytes(
            path / name, limit_name="member_bytes"
        )
    extensions = _image_extensions()
    contents = dict(archives.iter_files(path, keep=lambda n: os.path.splitext(n)[1].lower() in extensions))

    def read(name: str, keep: bool = False) -> bytes:
        return contents[name] if keep else contents.pop(name)  # release memory as images are decoded

    return list(contents), read


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def plan(path: Path, names: list[str]) -> dict:
    """Map each image file to (split, class) from its path; decide the layout and the class list."""
    extensions = _image_extensions()
    visible = [n for n in names if not any(part.startswith(".") for part in n.split("/"))]  # no .DS_Store
    parts = [n.split("/") for n in visible]
    # Drop a single top-level folder (e.g. cifar10-jpg/) when there is structure below it.
    while parts and len({p[0] for p in parts}) == 1 and max(map(len, parts)) >= 3 and parts[0][0] not in SPLIT_FOLDERS:
        parts = [p[1:] for p in parts]
    has_splits = any(p[0] == "train" for p in parts if len(p) == 3)
    files, ignored, folders = {}, len(names) - len(visible), set()
    for full, p in zip(visible, parts):
        depth_ok = (len(p) == 3 and p[0] in SPLIT_FOLDERS) if has_splits else len(p) == 2
        if depth_ok:
            folders.add("/".join(p[:-1]))
        if not depth_ok or os.path.splitext(p[-1])[1].lower() not in extensions:
            ignored += 1
            continue
        files[full] = (p[0] if has_splits else "train", p[-2])
    if not files:
        raise DataError(
            f"folder:{path}: no images found; expected train/<class>/<image> and test/<class>/<image>, "
            f"or <class>/<image>"
        )
    prefix = visible[0].split("/")[: len(visible[0].split("/")) - len(parts[0])]
    folders |= _empty_class_folders(path, prefix, has_splits)
    with_images = {"/".join((s, c) if has_splits else (c,)) for s, c in files.values()}
    empty = sorted(folders - with_images)
    if empty:
        raise DataError(
            f"folder:{path}: class folder {empty[0]} has no images"
            + (f" (and {len(empty) - 1} more)" if len(empty) > 1 else "")
        )
    class_names = sorted({cls for _, cls in files.values()})
    if len(class_names) < 2:
        raise DataError(
            f"folder:{path}: only one class ({class_names[0]}); a classifier needs at least two class folders"
        )
    return {
        "files": files,
        "class_names": class_names,
        "layout": SPLIT_LAYOUT if has_splits else FLAT_LAYOUT,
        "ignored": ignored,
    }


def _empty_class_folders(path: Path, prefix: list[str], has_splits: bool) -> set[str]:
    """Class folders on disk with no file at all (an archive does not list empty folders)."""
    if not path.is_dir():
        return set()
    root = path.joinpath(*prefix)
    tops = [root / s for s in SPLIT_FOLDERS] if has_splits else [root]
    found = set()
    for top in tops:
        if not top.is_dir():
            continue
        for folder in top.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and not any(folder.iterdir()):
                found.add(f"{top.name}/{folder.name}" if has_splits else folder.name)
    return found


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


def _cache_path(fingerprint: list, split: str, options: dict) -> Path:
    key = json.dumps([CACHE_VERSION, fingerprint, split, options], default=list)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir() / "folders" / f"{Path(fingerprint[0]).name}-{split}-{digest}.npz"


def _write_cache(file: Path, split: Split, classes: list[str], meta: dict) -> None:
    arrays = {
        "x": split.x,
        "y": split.y,
        "class_names": np.array(classes, dtype=str),
        "meta": np.array(json.dumps(meta)),
    }
    try:
        with atomic_path(file) as tmp:
            np.savez(tmp, **arrays)
    except OSError:
        pass  # a read-only or full cache only costs time at the next load


def _read_cache(file: Path):
    """(Split, classes, meta) from a cache file, or None if absent or unreadable."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as npz:
            part = Split(npz["x"], npz["y"])
            classes = [str(c) for c in npz["class_names"]]
            meta = json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is rebuilt
    meta["cache"] = str(file)
    return part, classes, meta
