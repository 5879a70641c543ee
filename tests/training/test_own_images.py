"""`cnnlab train` on data a user brings: the data check, the recorded split, the image size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.data.helpers import idx_bytes


@pytest.fixture
def subset_idx(tmp_path):
    """An IDX set whose training labels (0-5) are a strict subset of its test labels (0-11)."""
    rng = np.random.default_rng(0)
    train_y = np.repeat(np.arange(6), 20)
    test_y = np.concatenate([np.repeat(np.arange(6), 5), np.repeat(np.arange(6, 12), [3, 4, 5, 6, 7, 8])])
    folder = tmp_path / "subset"
    folder.mkdir()
    for prefix, labels in (("train", train_y), ("t10k", test_y)):
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels.astype(np.uint8)))
    return folder, int((test_y >= 6).sum()), len(test_y)


@pytest.fixture
def photos(tmp_path):
    """Three classes of 30 photo-sized JPEGs (90x120), told apart by brightness; no test split."""
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "photos"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(30):
            pixels = (rng.random((90, 120, 3)) * 60 + c * 90).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i:03d}.jpg")
    return root


def test_train_names_the_classes_absent_from_training_and_their_share(subset_idx, tmp_path):
    folder, unseen, total = subset_idx
    proc = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        f"idx:{folder}",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "idx",
    )
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("data check: test:"))
    assert f"{unseen} of {total} test images ({100 * unseen / total:.1f}%)" in line and "6, 7, 8, 9, 10, 11" in line
    config = json.loads((tmp_path / "runs" / "idx" / "config.json").read_text())
    assert any("6, 7, 8, 9, 10, 11" in warning for warning in config["data_checks"])
    strict = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        f"idx:{folder}",
        "--steps",
        "2",
        "--strict",
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "strict",
    )
    assert_clean_error(strict, "--strict", "no training images")
    assert not (tmp_path / "runs" / "strict").exists()


def test_a_folder_without_test_split_gets_a_recorded_split_that_evaluate_reproduces(photos, tmp_path):
    proc = run_cli(
        "train",
        "--model",
        "resnet20",
        "--dataset",
        f"folder:{photos}",
        "--image-size",
        "32",
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "p",
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "p"
    split = json.loads((run / "split.json").read_text())
    assert {k: len(v) for k, v in split["indices"].items()} == {"test": 9, "val": 9}  # 10% of 90 each
    from cnnlab.training import Run

    held_out = Run.load(run).dataset()  # re-applies split.json
    assert np.bincount(held_out.test.y, minlength=3).tolist() == [3, 3, 3]  # stratified by class
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == 9
    assert config["preprocessing"]["image_size"] == [32, 32]
    evaluated = run_cli("evaluate", run, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["accuracy"] == metrics["accuracy"] and report["loss"] == pytest.approx(metrics["loss"], abs=1e-6)
