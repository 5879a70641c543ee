"""Validation splits, seeded batching and label helpers.

The seeds split validation data off the training set in two ways, both expressible here:
"last 10,000 of train" (Hsi-Pin Ma's lecture: ``"last:10000"``) and "first 10%" (Jake Tae's tutorial: ``"first:10%"``).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from cnnlab.data.types import Split
from cnnlab.errors import DataError

_SPEC = re.compile(r"^(?:(first|last):)?\s*(\d+(?:\.\d*)?|\.\d+)\s*(%)?$")


def parse_val_split(spec: float | int | str, n: int) -> tuple[str, int]:
    """Turn a validation-split spec into ``(end, count)`` for a training set of ``n`` images.

    ``0.1`` and ``"10%"`` are fractions, ``10000`` a count, ``"first:..."`` / ``"last:..."``
    says which end of the training set to take (default: the last images).
    """
    end, amount, percent = "last", None, False
    if isinstance(spec, bool):
        raise DataError(f"val_split: expected a fraction, a count or 'first:N'/'last:N%', got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        amount = float(spec)
    elif isinstance(spec, (float, np.floating)):
        amount, percent = float(spec) * 100.0, True
    else:
        match = _SPEC.match(str(spec).strip().lower())
        if not match:
            raise DataError(f"val_split: expected a fraction, a count or 'first:N'/'last:N%', got {spec!r}")
        end = match.group(1) or "last"
        amount = float(match.group(2))
        percent = bool(match.group(3)) or (amount < 1 and "." in match.group(2))
        if percent and not match.group(3):
            amount *= 100.0
    if percent:
        if not 0 < amount < 100:
            raise DataError(f"val_split: a fraction must be between 0 and 1 (exclusive), got {spec!r}")
        count = int(round(n * amount / 100.0))
    else:
        if amount != int(amount):
            raise DataError(f"val_split: a count must be a whole number, got {spec!r}")
        count = int(amount)
    if not 0 < count < n:
        raise DataError(f"val_split: {spec!r} leaves no training or no validation images out of {n}")
    return end, count


def split_off_validation(train: Split, spec: float | int | str) -> tuple[Split, Split, dict]:
    """Split ``train`` into (train, val) by ``spec``, deterministically; also returns a record for meta."""
    end, count = parse_val_split(spec, len(train))
    n = len(train)
    if end == "last":
        kept, val = slice(0, n - count), slice(n - count, n)
    else:
        val, kept = slice(0, count), slice(count, n)
    record = {"spec": str(spec), "end": end, "count": count, "train": n - count}
    return train.take(kept), train.take(val), record


def batch_indices(
    n: int, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Index arrays of successive batches; with ``shuffle`` the order depends only on (seed, epoch).

    Seeding a fresh generator with ``[seed, epoch]`` (NumPy ``SeedSequence`` entropy) makes epoch
    ``e`` of a resumed run draw exactly the order the uninterrupted run drew.
    """
    if batch_size < 1:
        raise DataError(f"batch_size: expected a positive integer, got {batch_size}")
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, y_batch)``; the last partial batch is kept unless ``drop_last``."""
    if len(x) != len(y):
        raise DataError(f"batches: {len(x)} images but {len(y)} labels")
    for index in batch_indices(len(x), batch_size, shuffle=shuffle, seed=seed, epoch=epoch, drop_last=drop_last):
        yield x[index], y[index]


def one_hot(y: np.ndarray, num_classes: int, dtype=np.float32) -> np.ndarray:
    """Integer labels ``(N,)`` to one-hot rows ``(N, num_classes)``."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"one_hot: labels must be in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    out = np.zeros((len(y), num_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out


# ---------------------------------------------------------------------------------------------
# Stratified, seeded splits, recorded so they can be applied again exactly.

SPLIT_RECORD_VERSION = 1
DEFAULT_HOLDOUT = 0.1  # validation and test fractions when a dataset has neither


def holdout_count(spec: float | int | str, n: int, what: str) -> int:
    """Images a ``--val-split``/``--test-split`` spec takes out of ``n``: a fraction (``0.1``, ``"10%"``)
    or a count (``500``). ``first:``/``last:`` make no sense for a stratified split and are refused."""
    if isinstance(spec, str) and spec.strip().lower().startswith(("first:", "last:")):
        raise DataError(f"{what}: a stratified split takes a fraction or a count, not {spec!r}")
    try:
        return parse_val_split(spec, n)[1]
    except DataError as exc:
        raise DataError(str(exc).replace("val_split", what, 1)) from None


def stratified_indices(labels: np.ndarray, counts: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Partition ``range(len(labels))`` into parts of the given sizes (``counts``: {name: n}), the rest
    going to ``"train"``, each part with the class proportions of the whole.

    Each class's images are shuffled with a generator seeded by ``[seed, class]``; each part's size
    is shared out over the classes in proportion to their sizes by the largest-remainder method,
    so the totals are exact. A class with at least ``len(counts) + 1`` images keeps one image in
    train and gives one to each part; smaller classes stay in train. Indices come back sorted.
    """
    labels = np.asarray(labels)
    n = len(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    parts = {name: np.zeros(len(classes), np.int64) for name in counts}
    room = sizes.copy()
    eligible = sizes > len(counts)  # classes large enough to appear in every part and in train
    for name, total in counts.items():
        share = total * sizes / n
        take = np.floor(share).astype(np.int64)
        take[eligible] = np.maximum(take[eligible], 1)
        take = np.minimum(take, np.where(eligible, room - 1, 0))
        order = np.argsort(-(share - np.floor(share)), kind="stable")  # largest remainders first
        while take.sum() < total:
            grown = False
            for c in order:
                if take.sum() >= total:
                    break
                if take[c] < room[c] - 1:
                    take[c] += 1
                    grown = True
            if not grown:
                raise DataError(f"split: cannot take {total} images for {name} and keep every class in train")
        while take.sum() > total:  # the one-per-class minimum overshot: give back from the largest
            take[np.argmax(take)] -= 1
        parts[name] = take
        room = room - take
    out = {name: [] for name in (*counts, "train")}
    for c, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        members = members[np.random.default_rng([int(seed), int(label)]).permutation(len(members))]
        start = 0
        for name in counts:
            out[name].append(members[start : start + parts[name][c]])
            start += parts[name][c]
        out["train"].append(members[start:])
    return {name: np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64) for name, chunks in out.items()}


def split_checksum(split: Split) -> str:
    """SHA-256 of a split's images and labels (shape, bytes): what a split record is tied to.

    Streamed images (:class:`cnnlab.data.files.FileImages`) count by their files' paths, sizes
    and modification times instead of their pixels."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(repr((split.x.shape, str(split.x.dtype))).encode())
    if hasattr(split.x, "digest"):  # streamed image files: their names, sizes and times, not an epoch of decoding
        digest.update(split.x.digest())
    else:
        for start in range(0, len(split), 4096):
            digest.update(np.ascontiguousarray(split.x[start : start + 4096]).tobytes())
    digest.update(np.ascontiguousarray(split.y, dtype="<i8").tobytes())
    return digest.hexdigest()


def stratified_split(
    dataset, val: float | int | str | None = "auto", test: float | int | str | None = "auto", seed: int = 0
):
    """A stratified, seeded validation and/or test split of ``dataset``'s training images.

    ``val`` and ``test`` are fractions of the training split (``0.1``, ``"10%"``) or image counts;
    ``None`` (or 0) takes none; ``"auto"`` takes ``DEFAULT_HOLDOUT`` (10%) when the dataset has no
    such split and none when it has one. A split the dataset already has is never replaced.
    Returns ``(new_dataset, record)``: the record (a JSON-ready dict: the source's checksum,
    seed, and the indices of each part) saved with :func:`save_split_record` and given to
    :func:`apply_split_record` rebuilds exactly the same split. ``record["message"]`` is one line
    to print (for example "no test split: 10% of train (200 images, stratified, seed 0) held out").
    """
    from dataclasses import replace

    source = dataset.train
    n = len(source)
    wanted = {}
    for name, spec, existing in (("test", test, dataset.test), ("val", val, dataset.val)):
        if isinstance(spec, str) and spec == "auto":
            spec = None if existing is not None else DEFAULT_HOLDOUT
        if spec is None or (not isinstance(spec, str) and spec == 0):
            continue
        if existing is not None:
            raise DataError(f"{name}_split: {dataset.name} already has a {name} split ({len(existing)} images)")
        wanted[name] = (spec, holdout_count(spec, n, f"{name}_split"))
    if sum(count for _, count in wanted.values()) >= n:
        raise DataError(
            f"split: {', '.join(f'{k}={v[0]}' for k, v in wanted.items())} leaves no training images out of {n}"
        )
    parts = stratified_indices(source.y, {name: count for name, (_, count) in wanted.items()}, seed)
    record = {
        "version": SPLIT_RECORD_VERSION,
        "dataset": dataset.name,
        "source": {"split": "train", "images": n, "checksum": split_checksum(source)},
        "seed": int(seed),
        "specs": {name: _spec_text(spec) for name, (spec, _) in wanted.items()},
        "indices": {name: parts[name].tolist() for name in wanted},
    }
    record["message"] = split_message(record)
    return _apply(dataset, parts, record, replace), record


def _spec_text(spec) -> str:
    """0.1 -> "10%"; counts and strings as given."""
    if isinstance(spec, float) and 0 < spec < 1:
        return f"{100 * spec:g}%"
    return str(spec)


def split_message(record: dict) -> str:
    """One line saying what a record holds out, for the console and the log."""
    n = record["source"]["images"]
    held = [f"{name} {len(idx)} images ({record['specs'][name]})" for name, idx in record["indices"].items()]
    if not held:
        return f"{record['dataset']}: no split taken"
    return (
        f"{record['dataset']}: held out of its {n} training images, stratified by class, seed {record['seed']}: "
        + ", ".join(held)
    )


class SourceChanged(DataError):
    """The training images are not those a split record was made from."""


def apply_split_record(dataset, record: dict):
    """``dataset`` split exactly as ``record`` (from :func:`stratified_split`) says.

    A DataError when the training images are not those the record was made from (their checksum
    differs), so a resumed or re-evaluated run never silently tests on other images.
    """
    from dataclasses import replace

    if not isinstance(record, dict) or record.get("version") != SPLIT_RECORD_VERSION:
        raise DataError(f"split record: expected version {SPLIT_RECORD_VERSION} with source, seed and indices")
    source = dataset.train
    expected = record["source"]
    if len(source) != expected["images"] or split_checksum(source) != expected["checksum"]:
        raise SourceChanged(
            f"split record: {dataset.name}'s training images changed since the split was recorded "
            f"({expected['images']} images then, {len(source)} now; checksums differ), so the "
            f"recorded validation/test images no longer exist; use the original data or a new run"
        )
    n = len(source)
    parts = {name: np.asarray(idx, np.int64) for name, idx in record["indices"].items()}
    held = np.concatenate([*parts.values(), np.zeros(0, np.int64)])
    if held.size and (held.min() < 0 or held.max() >= n or len(np.unique(held)) != held.size):
        raise DataError("split record: indices out of range or repeated")
    keep = np.ones(n, bool)
    keep[held] = False
    parts["train"] = np.flatnonzero(keep)
    for name in parts:
        if name != "train" and getattr(dataset, name) is not None:
            raise DataError(f"split record: {dataset.name} already has a {name} split")
    return _apply(dataset, parts, record, replace)


def _apply(dataset, parts: dict, record: dict, replace):
    source = dataset.train
    new = {name: source.take(idx) for name, idx in parts.items()}
    meta = {**dataset.meta, "split_record": {k: v for k, v in record.items() if k != "indices"}}
    files = meta.get("files")
    if isinstance(files, dict) and "train" in files:  # folder file names follow the images
        names = files["train"]
        meta["files"] = {**files, **{name: [names[i] for i in idx] for name, idx in parts.items()}}
    return replace(
        dataset, train=new["train"], val=new.get("val", dataset.val), test=new.get("test", dataset.test), meta=meta
    )


def save_split_record(record: dict, path) -> None:
    """Write a split record as JSON, atomically (in a run folder: ``split.json``)."""
    import json

    from cnnlab.io import atomic_write_text

    head = {k: v for k, v in record.items() if k != "indices"}
    text = json.dumps(head, indent=2)[:-2]  # the readable part, then one compact line per index list
    lists = ",\n".join(f'    "{name}": {json.dumps([int(i) for i in idx])}' for name, idx in record["indices"].items())
    atomic_write_text(path, f'{text},\n  "indices": {{\n{lists}\n  }}\n}}\n')


def load_split_record(path) -> dict:
    """Read a split record written by :func:`save_split_record`; a DataError naming the file if unreadable."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no split record here") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable split record ({exc})") from None
    if not isinstance(record, dict) or "indices" not in record or "source" not in record:
        raise DataError(f"{path}: not a split record (expected source, seed and indices)")
    return record
