"""What is in a dataset, and what is wrong with it: ``cnnlab inspect`` and the checks before training.

:func:`inspect_dataset` looks at a loaded :class:`~cnnlab.data.types.Dataset` and returns a
:class:`Report`: counts per split and class; classes missing from a split, and how many test
images belong to classes the model never sees in training (it can never predict them); labels
outside the class list; exact duplicates and near-duplicates within and across splits; files
that failed to decode (``folder:`` sets loaded with ``skip_bad``); image sizes and colour modes
as stored; per-channel mean and standard deviation; strong class imbalance. ``Report.warnings``
are one line each, for the console, the log and a run's ``config.json``.

Near-duplicates are found on perceptual thumbnails: each image averaged down to 16x16 grey
levels (an "average hash" kept as grey levels instead of bits). Two images whose thumbnails
differ by at most ``near_difference`` grey levels on average (default 1.5 of 255) and whose
pixels are not identical are near-duplicates: re-encoded, resized or slightly edited copies.
Candidate pairs come from a k-d tree (SciPy) on the thumbnails' 4x4 block means, with a radius
that provably misses no pair, so the work stays far below comparing every pair.

Why not bits (dHash, aHash as in the ``imagehash`` package)? Measured here: on smooth photos a
JPEG re-save at quality 70 moved the 64-bit difference hash by 20 bits while the thumbnails
differed by 0.16 grey levels on average (neighbouring blocks of a sky are nearly equal, so their
"is the right one brighter" bits flip), and on MNIST 9,121 training digits share their exact
dHash with a different digit. Grey-level thumbnails separate the two cases; they are computed in
NumPy on the uint8 arrays already decoded (the pixels the model sees), with no new dependency.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
IMBALANCE_RATIO = 10.0  # largest / smallest training class at which a warning is given
NEAR_DIFFERENCE = 1.5  # mean grey-level difference of 16x18 thumbnails at most which two images are near-duplicates
MAX_EXAMPLES = 5
THUMB = 16  # thumbnail side


@dataclass
class Report:
    """The result of :func:`inspect_dataset`. ``warnings`` and ``notes`` are one-line strings."""

    name: str
    class_names: list[str]
    counts: dict[str, list[int]]  # split -> images per class
    missing: dict[str, list[str]]  # split -> classes with no image there
    unseen_test: dict[str, Any]  # test images of classes with no training image
    out_of_range: dict[str, dict[str, Any]]  # split -> {"count", "values"}
    exact_duplicates: dict[str, dict[str, Any]]  # "train", "train/test"... -> {"count", "examples"}
    near_duplicates: dict[str, dict[str, Any]]
    bad_files: dict[str, Any]
    image_shape: list[int]
    sizes: dict[str, int]  # "HxW" as stored -> images
    modes: dict[str, int]  # Pillow mode as stored -> images
    channel_mean: list[float]
    channel_std: list[float]
    imbalance: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dataset: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready content (everything but the dataset itself)."""
        out = {k: v for k, v in self.__dict__.items() if k != "dataset"}
        out["total"] = {split: int(sum(c)) for split, c in self.counts.items()}
        return out

    def raise_if_warnings(self, what: str = "inspect --strict") -> None:
        """A DataError (one line: the count and the first warning) if there is any warning."""
        if self.warnings:
            more = f" (and {len(self.warnings) - 1} more warning(s))" if len(self.warnings) > 1 else ""
            raise DataError(f"{what}: {self.name}: {self.warnings[0]}{more}")

    def summary_lines(self) -> list[str]:
        """A plain-text summary: counts, sizes, statistics, then notes and warnings."""
        lines = [f"{self.name}: {len(self.class_names)} classes, image shape {tuple(self.image_shape)}"]
        for split, counts in self.counts.items():
            lines.append(f"  {split}: {sum(counts)} images; per class min {min(counts)}, max {max(counts)}")
        sizes = ", ".join(f"{k} ({v})" for k, v in list(self.sizes.items())[:5])
        modes = ", ".join(f"{k} ({v})" for k, v in self.modes.items())
        lines.append(f"  sizes as stored: {sizes}{' ...' if len(self.sizes) > 5 else ''}; modes: {modes}")
        mean = ", ".join(f"{m:.1f}" for m in self.channel_mean)
        std = ", ".join(f"{s:.1f}" for s in self.channel_std)
        lines.append(f"  train channel mean ({mean}), std ({std}) on 0..255")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        if not self.warnings:
            lines.append("no warnings")
        return lines

    def write_png(self, path, samples_per_class: int = 8, max_classes: int = 12, seed: int = 0):
        """The PNG report: class histogram per split, size distribution, a sample grid per class."""
        return write_report_png(self, path, samples_per_class=samples_per_class, max_classes=max_classes, seed=seed)


def inspect_dataset(
    dataset, *, near_difference: float = NEAR_DIFFERENCE, imbalance_ratio: float = IMBALANCE_RATIO
) -> Report:
    """Check a loaded dataset; see the module docstring. Never raises on what it finds."""
    names = list(dataset.class_names)
    k = len(names)
    splits = {s: getattr(dataset, s) for s in SPLIT_NAMES if getattr(dataset, s) is not None}
    splits = {s: part for s, part in splits.items() if len(part) or s == "train"}
    meta = dataset.meta or {}
    files = meta.get("files") if isinstance(meta.get("files"), dict) else {}
    warnings: list[str] = []
    notes: list[str] = list(meta.get("notes", []))

    def label(split: str, i: int) -> str:
        names_in_split = files.get(split)
        return names_in_split[i] if names_in_split and i < len(names_in_split) else f"{split} #{i}"

    # Labels outside the class list, then counts per class of the labels inside it.
    out_of_range, counts = {}, {}
    for split, part in splits.items():
        bad = (part.y < 0) | (part.y >= k)
        if bad.any():
            values = sorted({int(v) for v in part.y[bad]})
            out_of_range[split] = {"count": int(bad.sum()), "values": values[:20]}
            warnings.append(
                f"{split}: {int(bad.sum())} label(s) outside the {k} classes (values "
                f"{', '.join(map(str, values[:5]))}{' ...' if len(values) > 5 else ''}; expected 0..{k - 1})"
            )
        counts[split] = np.bincount(part.y[~bad], minlength=k).astype(int).tolist()

    # Classes missing from a split; test images of classes never seen in training.
    missing = {split: [names[c] for c in range(k) if counts[split][c] == 0] for split in counts}
    train_has = np.array(counts["train"]) > 0
    if len(splits["train"]) and not train_has.all():
        absent = [names[c] for c in range(k) if not train_has[c]]
        warnings.append(
            f"train: {len(absent)} of {k} classes have no training images ({_names(absent)}); "
            f"the model can never predict them"
        )
    unseen = {"classes": [], "count": 0, "share": 0.0}
    for split in ("test", "val"):
        if split not in counts or not len(splits["train"]):
            continue
        here = np.array(counts[split])
        lost = (~train_has) & (here > 0)
        if lost.any():
            n_lost, total = int(here[lost].sum()), int(here.sum())
            share = n_lost / max(total, 1)
            classes = [names[c] for c in np.flatnonzero(lost)]
            if split == "test":
                unseen = {"classes": classes, "count": n_lost, "share": share}
            warnings.append(
                f"{split}: {n_lost} of {total} {split} images ({100 * share:.1f}%) belong to "
                f"{len(classes)} class(es) with no training images ({_names(classes)}): "
                f"they can never be classified correctly"
            )
        elif split in missing and missing[split] and train_has.any():
            notes.append(f"{split}: no images of {len(missing[split])} class(es) ({_names(missing[split])})")

    # Exact and near duplicates, within and across splits.
    digests = {s: _digests(part.x) for s, part in splits.items()}
    thumbs = {s: thumbnails(part.x) for s, part in splits.items()}
    exact, near = _duplicates(digests, thumbs, near_difference, label)
    for key, found in exact.items():
        if found["count"]:
            first, _, second = key.partition("/")
            what = (
                f"{found['count']} {second} image(s) are exact copies of {first} images"
                if second
                else f"{found['count']} image(s) are exact copies of other {first} images"
            )
            warnings.append(f"{key}: {what} (e.g. {found['examples'][0]})")
    for key, found in near.items():
        if found["count"]:
            first, _, second = key.partition("/")
            what = (
                f"{found['count']} {second} image(s) are near-duplicates of {first} images"
                if second
                else f"{found['count']} image(s) are near-duplicates of other {first} images"
            )
            warnings.append(
                f"{key}: {what} (16x16 thumbnails within {near_difference:g} grey "
                f"levels on average; e.g. {found['examples'][0]})"
            )

    # Files that failed to decode (skipped by the folder loader).
    bad_files = {"count": int(meta.get("skipped_bad", 0) or 0), "examples": list(meta.get("skipped_examples", []))}
    if bad_files["count"]:
        warnings.append(
            f"{bad_files['count']} file(s) could not be decoded and were skipped "
            f"({', '.join(bad_files['examples'][:3])}{' ...' if bad_files['count'] > 3 else ''})"
        )

    # Sizes and modes as stored (folder sets record them; arrays have one size).
    shape = list(dataset.input_shape)
    total = sum(len(p) for p in splits.values())
    sizes = dict(meta.get("source_sizes") or {f"{shape[0]}x{shape[1]}": total})
    modes = dict(meta.get("source_modes") or {("L" if shape[2] == 1 else "RGB"): total})
    if len(sizes) > 1 or meta.get("resized"):
        notes.append(
            f"{len(sizes)} image size(s) as stored ({_top(sizes)}); "
            f"{meta.get('resized', 0)} image(s) resized to {shape[0]}x{shape[1]}"
        )
    if len(modes) > 1 or meta.get("converted"):
        notes.append(
            f"colour modes as stored: {_top(modes)}; {meta.get('converted', 0)} image(s) converted to "
            f"{'grayscale' if shape[2] == 1 else 'RGB'}"
        )

    # Channel statistics of the training images, exactly, from value counts.
    mean, std = [], []
    if len(splits["train"]):
        from cnnlab.data.preprocessing import _moments, _value_counts

        m, s = _moments(_value_counts(splits["train"].x))
        mean, std = [round(float(v), 3) for v in m], [round(float(v), 3) for v in s]

    # Imbalance among the classes that have training images.
    present = [(counts["train"][c], names[c]) for c in range(k) if counts["train"][c] > 0]
    imbalance = {"ratio": None, "largest": None, "smallest": None}
    if len(present) >= 2:
        (small_n, small), (large_n, large) = min(present), max(present)
        ratio = large_n / small_n
        imbalance = {"ratio": round(ratio, 2), "largest": [large, large_n], "smallest": [small, small_n]}
        if ratio >= imbalance_ratio:
            warnings.append(
                f"train: classes are strongly imbalanced: {large!r} has {large_n} images, {small!r} "
                f"{small_n} (ratio {ratio:.1f}; warned at {imbalance_ratio:g})"
            )

    return Report(
        name=dataset.name,
        class_names=names,
        counts=counts,
        missing=missing,
        unseen_test=unseen,
        out_of_range=out_of_range,
        exact_duplicates=exact,
        near_duplicates=near,
        bad_files=bad_files,
        image_shape=shape,
        sizes=sizes,
        modes=modes,
        channel_mean=mean,
        channel_std=std,
        imbalance=imbalance,
        warnings=warnings,
        notes=notes,
        dataset=dataset,
    )


def load_for_inspection(name: str, *, val_split=None, image_size=None, resize: str = "squash", **options):
    """Load ``name`` for :func:`inspect_dataset`: a ``folder:`` set (or the CIFAR-10 JPEG copy) with
    bad files skipped and counted instead of stopping at the first, and its file names listed."""
    from cnnlab.data.registry import load_dataset, normalise_name

    key = normalise_name(name)
    if key.startswith("folder:") or key == "cifar10_jpg":
        options = {"skip_bad": True, "list_files": True, "resize": resize, **options}
        if image_size is not None:
            options["image_size"] = parse_image_size(image_size)
    elif image_size is not None:
        raise DataError(f"--image-size: only folder datasets are resized when loaded, not {name}")
    return load_dataset(name, val_split=val_split, **options)


def parse_image_size(spec) -> tuple[int, int]:
    """``64``, ``"64"``, ``"64,48"``, ``"64x48"`` or ``(64, 48)`` -> (height, width)."""
    if isinstance(spec, (tuple, list)):
        values = list(spec)
    else:
        values = str(spec).lower().replace("x", ",").split(",")
    try:
        size = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        size = ()
    if len(size) == 1:
        size = (size[0], size[0])
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"image_size: expected H or H,W (positive whole numbers), got {spec!r}")
    return size


def _names(classes: list[str], limit: int = 8) -> str:
    shown = ", ".join(map(str, classes[:limit]))
    return shown + (f" and {len(classes) - limit} more" if len(classes) > limit else "")


def _top(counts: dict, limit: int = 3) -> str:
    items = sorted(counts.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{k} {v}" for k, v in items[:limit])
    return shown + (f", {len(items) - limit} more" if len(items) > limit else "")


# ---------------------------------------------------------------------------------------------
# Hashes.


def _digests(x: np.ndarray) -> np.ndarray:
    """A 16-byte BLAKE2 digest of each image's pixels, as an (N,) array of bytes objects."""
    return np.array([hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in x], dtype=object)


def thumbnails(x: np.ndarray) -> np.ndarray:
    """Grayscale 16x16 thumbnails (float32 block means, 0..255) of uint8 images (N, H, W, C)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    n, height, width = x.shape[:3]
    out = np.zeros((n, THUMB, THUMB), np.float32)
    chunk = max(1, 2**24 // max(1, height * width * x.shape[3]))
    for start in range(0, n, chunk):
        gray = x[start : start + chunk].astype(np.float32).mean(axis=3)
        out[start : start + chunk] = _area_resize(gray, THUMB, THUMB)
    return out


def dhash(x: np.ndarray) -> np.ndarray:
    """64-bit difference hashes (uint64, one per image) of uint8 images (N, H, W, C): the 16x16
    thumbnail averaged to 8 rows of 9 columns, one bit per pair of neighbours (is the right one
    brighter?). Reported for reference; near-duplicates are decided on the thumbnails."""
    thumbs = thumbnails(x)
    small = _area_resize(thumbs, 8, 9)
    bits = small[:, :, 1:] > small[:, :, :-1]
    return np.packbits(bits.reshape(len(bits), 64), axis=1).view(">u8").ravel().astype(np.uint64)


def _area_resize(gray: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(N, H, W) float -> (N, rows, cols), each output pixel the mean of its block of input pixels."""
    for axis, size in ((1, rows), (2, cols)):
        if gray.shape[axis] < size:  # upsample tiny images by repetition first
            gray = np.repeat(gray, -(-size // gray.shape[axis]), axis=axis)
        edges = np.linspace(0, gray.shape[axis], size + 1).astype(int)
        sums = np.add.reduceat(gray, edges[:-1], axis=axis)
        widths = np.diff(edges).astype(np.float32)
        gray = sums / (widths[:, None] if axis == 1 else widths[None, :])
    return gray


def near_pairs(thumbs: np.ndarray, max_difference: float) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of images whose 16x16 thumbnails differ by at most ``max_difference``
    grey levels on average; each j is paired with the first such i.

    Candidates come from a k-d tree on 4x4 block means of the thumbnails: a block mean differs by
    at most the mean difference inside its block, so two thumbnails within ``max_difference`` on
    average have 4x4 means within ``16 * max_difference`` in L1 distance, and no pair is missed.
    """
    from scipy.spatial import cKDTree

    if len(thumbs) < 2:
        return []
    coarse = thumbs.reshape(len(thumbs), 4, THUMB // 4, 4, THUMB // 4).mean(axis=(2, 4)).reshape(len(thumbs), 16)
    candidates = cKDTree(coarse).query_pairs(16 * max_difference + 1e-3, p=1, output_type="ndarray")
    if not len(candidates):
        return []
    flat = thumbs.reshape(len(thumbs), -1)
    close = np.zeros(len(candidates), bool)
    for start in range(0, len(candidates), 65536):
        i, j = candidates[start : start + 65536].T
        close[start : start + 65536] = np.abs(flat[i] - flat[j]).mean(axis=1) <= max_difference
    first: dict[int, int] = {}
    for i, j in sorted(map(tuple, np.sort(candidates[close], axis=1).tolist())):
        first.setdefault(j, i)
    return sorted((i, j) for j, i in first.items())


def _duplicates(digests: dict, thumbs: dict, near_difference: float, label) -> tuple[dict, dict]:
    """Exact and near duplicates within each split and across each pair of splits."""
    order = [s for s in SPLIT_NAMES if s in digests]
    keys = [*order, *(f"{a}/{b}" for i, a in enumerate(order) for b in order[i + 1 :])]
    exact = {}
    for split in order:
        seen: dict = {}
        found = []
        for i, d in enumerate(digests[split]):
            if d in seen:
                found.append(f"{label(split, i)} = {label(split, seen[d])}")
            else:
                seen[d] = i
        exact[split] = {"count": len(found), "examples": found[:MAX_EXAMPLES]}
    for a_i, first in enumerate(order):
        index = {}
        for i, d in enumerate(digests[first]):
            index.setdefault(d, i)
        for second in order[a_i + 1 :]:
            found = [
                f"{label(second, j)} = {label(first, index[d])}" for j, d in enumerate(digests[second]) if d in index
            ]
            exact[f"{first}/{second}"] = {"count": len(found), "examples": found[:MAX_EXAMPLES]}

    # Near: over all splits at once (train first), images whose pixels differ from their partner's.
    where = [(s, i) for s in order for i in range(len(thumbs[s]))]
    all_digests = [digests[s][i] for s, i in where]
    pairs = near_pairs(np.concatenate([thumbs[s] for s in order]), near_difference)
    found: dict[str, list[str]] = {key: [] for key in keys}
    for i, j in pairs:
        if all_digests[i] == all_digests[j]:
            continue  # an exact copy, counted above
        (first, a), (second, b) = where[i], where[j]
        key = first if first == second else f"{first}/{second}"
        found[key].append(f"{label(second, b)} ~ {label(first, a)}")
    near = {key: {"count": len(v), "examples": v[:MAX_EXAMPLES]} for key, v in found.items()}
    return exact, near


# ---------------------------------------------------------------------------------------------
# The PNG report.


def write_report_png(report: Report, path, *, samples_per_class: int = 8, max_classes: int = 12, seed: int = 0):
    """One PNG: images per class and split; sizes as stored; ``samples_per_class`` training images
    of each of the first ``max_classes`` classes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cnnlab.io import atomic_path

    dataset = report.dataset
    if dataset is None:
        raise DataError("inspect: the report has no dataset to draw samples from")
    k = len(report.class_names)
    shown = list(range(min(k, max_classes)))
    grid_rows = len(shown)
    fig = Figure(figsize=(max(10, 0.9 * samples_per_class + 2), 6 + 0.9 * grid_rows))
    FigureCanvasAgg(fig)
    outer = fig.add_gridspec(2, 1, height_ratios=[5, 0.9 * max(grid_rows, 1)], hspace=0.25)
    top = outer[0].subgridspec(1, 2, width_ratios=[2, 1], wspace=0.3)
    ax = fig.add_subplot(top[0])
    width = 0.8 / max(len(report.counts), 1)
    positions = np.arange(k)
    for i, (split, counts) in enumerate(report.counts.items()):
        ax.bar(positions + (i - (len(report.counts) - 1) / 2) * width, counts, width, label=f"{split} ({sum(counts)})")
    ax.set_title("images per class and split")
    ax.set_ylabel("images")
    if k <= 30:
        ax.set_xticks(positions)
        ax.set_xticklabels([str(c)[:12] for c in report.class_names], rotation=45, ha="right", fontsize=8)
    else:
        ax.set_xlabel("class index")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(top[1])
    sizes = sorted(report.sizes.items(), key=lambda item: -item[1])[:12]
    ax.barh([s for s, _ in sizes][::-1], [n for _, n in sizes][::-1], color="tab:gray")
    ax.set_title(f"sizes as stored (HxW){' (top 12)' if len(report.sizes) > 12 else ''}")
    ax.set_xlabel("images")
    ax.tick_params(axis="y", labelsize=8)
    if shown:
        grid = outer[1].subgridspec(grid_rows, samples_per_class + 1, wspace=0.05, hspace=0.1)
        train = dataset.train
        rng = np.random.default_rng(seed)
        for row, c in enumerate(shown):
            label_ax = fig.add_subplot(grid[row, 0])
            label_ax.set_axis_off()
            label_ax.text(
                1.0,
                0.5,
                f"{str(report.class_names[c])[:14]}\n({report.counts['train'][c]})",
                ha="right",
                va="center",
                fontsize=8,
                transform=label_ax.transAxes,
            )
            members = np.flatnonzero(train.y == c)
            pick = np.sort(rng.choice(members, size=min(samples_per_class, len(members)), replace=False))
            for col in range(samples_per_class):
                cell = fig.add_subplot(grid[row, col + 1])
                cell.set_axis_off()
                if col < len(pick):
                    image = train.x[pick[col]]
                    gray = image.shape[-1] == 1
                    cell.imshow(
                        image[..., 0] if gray else image,
                        cmap="gray" if gray else None,
                        vmin=0,
                        vmax=255,
                        interpolation="nearest",
                    )
    title = f"{report.name}: {k} classes, {sum(sum(c) for c in report.counts.values())} images"
    if k > len(shown):
        title += f" (samples of the first {len(shown)} classes)"
    fig.suptitle(title)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
