"""``cnnlab inspect`` and ``inspect_dataset``: missing classes, duplicates, bad files, sizes, imbalance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.data import Dataset, Split, load_dataset
from cnnlab.data.inspect import dhash, inspect_dataset
from tests.conftest import assert_clean_error, run_cli
from tests.data.helpers import idx_bytes, png_bytes, write_folder


def _write_idx(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels.astype(np.uint8)))


@pytest.fixture
def subset_idx(tmp_path):
    """An IDX set whose training labels (0-5) are a strict subset of its test labels (0-11)."""
    rng = np.random.default_rng(0)
    train_y = np.repeat(np.arange(6), 20)
    test_y = np.concatenate([np.repeat(np.arange(6), 5), np.repeat(np.arange(6, 12), [3, 4, 5, 6, 7, 8])])
    train_x = rng.integers(0, 256, (len(train_y), 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, (len(test_y), 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "subset", "train", train_x, train_y)
    _write_idx(tmp_path / "subset", "t10k", test_x, test_y)
    unseen = int((test_y >= 6).sum())
    return tmp_path / "subset", unseen, len(test_y)


def test_idx_classes_absent_from_training_are_named_with_their_share(subset_idx):
    folder, unseen, total = subset_idx
    report = inspect_dataset(load_dataset(f"idx:{folder}"))
    assert report.unseen_test["classes"] == [str(c) for c in range(6, 12)]
    assert report.unseen_test["count"] == unseen
    assert report.unseen_test["share"] == pytest.approx(unseen / total)
    assert report.missing["train"] == [str(c) for c in range(6, 12)]
    line = next(w for w in report.warnings if w.startswith("test:"))
    assert f"{unseen} of {total} test images ({100 * unseen / total:.1f}%)" in line
    assert "6, 7, 8, 9, 10, 11" in line


def test_cli_inspect_json_png_and_strict(subset_idx, tmp_path):
    folder, unseen, total = subset_idx
    out = tmp_path / "report.png"
    proc = run_cli("inspect", f"idx:{folder}", "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["unseen_test"]["count"] == unseen and report["total"] == {"train": 120, "test": total}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run_cli("inspect", f"idx:{folder}")
    assert proc.returncode == 0 and f"{unseen} of {total} test images" in proc.stdout
    assert_clean_error(run_cli("inspect", f"idx:{folder}", "--strict"), "--strict", "no training images")


def test_clean_dataset_has_no_warnings_and_strict_passes(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    data = Dataset("clean", Split(x[:30], np.arange(30) % 3), None, Split(x[30:], np.arange(10) % 3), ["a", "b", "c"])
    report = inspect_dataset(data)
    assert report.warnings == []
    report.raise_if_warnings()  # nothing to raise
    assert report.counts == {"train": [10, 10, 10], "test": [4, 3, 3]}
    assert report.channel_mean == pytest.approx(x[:30].reshape(-1, 3).mean(axis=0), abs=1e-3)
    assert report.channel_std == pytest.approx(x[:30].reshape(-1, 3).std(axis=0), abs=1e-3)


def test_exact_and_near_duplicates_within_and_across_splits():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:32, 0:32]
    photos = []
    for _ in range(12):  # smooth, distinct pictures (a random direction and phase each)
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) / 4 + phase)
        photos.append(np.repeat(((wave + 1) * 110 + 10)[..., None], 3, axis=2).astype(np.uint8))
    train = np.stack(photos[:8])
    test = np.stack(photos[8:])
    train[7] = train[2]  # an exact copy inside train
    test[0] = train[5]  # an exact copy across train/test
    test[1] = np.clip(train[3].astype(int) + rng.integers(-1, 2, train[3].shape), 0, 255).astype(np.uint8)  # near
    data = Dataset("dups", Split(train, np.arange(8) % 2), None, Split(test, np.arange(4) % 2), ["a", "b"])
    report = inspect_dataset(data)
    assert report.exact_duplicates["train"]["count"] == 1
    assert report.exact_duplicates["train/test"]["count"] == 1
    assert report.exact_duplicates["train/test"]["examples"] == ["test #0 = train #5"]
    assert report.near_duplicates["train/test"]["count"] == 1
    assert report.near_duplicates["train/test"]["examples"] == ["test #1 ~ train #3"]
    assert report.near_duplicates["train"]["count"] == 0  # the exact copy is not counted twice
    assert sum("exact copies" in w for w in report.warnings) == 2
    assert any("near-duplicates" in w for w in report.warnings)


def test_dhash_is_stable_under_small_changes_and_differs_for_other_pictures():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:64]
    base = (100 + 80 * np.sin(xx / 6.0) * np.cos(yy / 9.0)).reshape(1, 64, 64, 1).astype(np.uint8)
    noisy = np.clip(base.astype(int) + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
    flipped = base[:, :, ::-1]
    h = dhash(np.concatenate([base, noisy, flipped]))
    assert h.dtype == np.uint64 and h[0] == h[1] and h[0] != h[2]


def test_labels_outside_class_list_and_imbalance():
    x = np.zeros((60, 4, 4, 1), np.uint8)
    x[:, 0, 0, 0] = np.arange(60)  # all distinct
    y = np.array([0] * 50 + [1] * 4 + [2] * 4 + [3] * 2)  # 3 is outside a 3-class list
    data = Dataset("odd", Split(x, y), None, None, ["a", "b", "c"])
    report = inspect_dataset(data)
    assert report.out_of_range == {"train": {"count": 2, "values": [3]}}
    assert report.imbalance["ratio"] == pytest.approx(12.5)
    assert any("outside the 3 classes" in w for w in report.warnings)
    assert any("strongly imbalanced" in w and "'a' has 50" in w for w in report.warnings)


def test_folder_bad_files_sizes_and_modes_are_reported(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    root = tmp_path / "photos"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            size = (40, 30) if i % 2 else (50, 50)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / cls / f"{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)).save(root / "dog" / "gray.png")
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    proc = run_cli("inspect", f"folder:{root}", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bad_files"] == {"count": 1, "examples": ["cat/broken.jpg"]}
    assert report["sizes"] == {"50x50": 4, "30x40": 5}
    assert report["modes"] == {"RGB": 8, "L": 1}
    assert any("could not be decoded" in w and "broken.jpg" in w for w in report["warnings"])
    assert any("resized to" in n for n in report["notes"]) and any("colour modes" in n for n in report["notes"])


def test_png_report_for_a_folder(tmp_path):
    rng = np.random.default_rng(5)
    files = {
        f"{s}/{c}/{i}.png": png_bytes(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
        for s in ("train", "test")
        for c in ("a", "b", "c")
        for i in range(3)
    }
    write_folder(tmp_path / "set", files)
    from cnnlab.data.inspect import load_for_inspection

    report = inspect_dataset(load_for_inspection(f"folder:{tmp_path / 'set'}"))
    out = report.write_png(tmp_path / "r.png")
    from PIL import Image

    with Image.open(out) as image:
        assert image.size[0] >= 800 and image.size[1] >= 600
