"""`cnnlab train --stream`: a folder's images decoded per batch, with the numbers of the in-memory path."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.data.helpers import idx_bytes


@pytest.fixture
def jpegs(tmp_path):
    """Three classes of 24 JPEGs (40x48, told apart by brightness), no test split; written now."""
    from PIL import Image

    rng = np.random.default_rng(3)
    root = tmp_path / "jpegs"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(24):
            pixels = (rng.random((40, 48, 3)) * 80 + c * 80).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i:03d}.jpg", quality=90)
    return root


def _run(folder, runs, name, stream, **extra):
    from cnnlab.training import train

    options = dict(
        image_size="16",
        batch_size=8,
        steps=14,  # 8 batches of the 58 training images per epoch (the last partial): two epochs, the second cut short
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        augmentation={"flip": True, "shift": 0.1},
        normalize="standardize",
        steps_per_execution=1,
        seed=5,
        verbose=False,
    )
    options.update(extra)
    return train("resnet20", f"folder:{folder}", runs_dir=runs, name=name, stream=stream, **options)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_streamed_run_trains_like_the_in_memory_run_of_the_same_folder(jpegs, tmp_path):
    """Same batches, same augmentation seeds, same pixels (one decoder), same preprocessing
    statistics (58 images, under the fit sample): the same history, metrics and weights bit for bit."""
    from cnnlab.training import Run

    memory = Run.load(_run(jpegs, tmp_path, "memory", "off").path)
    streamed = Run.load(_run(jpegs, tmp_path, "streamed", "on").path)
    assert streamed.config["train"]["stream"] == "on" and memory.config["train"]["stream"] == "off"
    assert streamed.config["stream"]["streamed"] and not memory.config["stream"]["streamed"]
    assert streamed.config["dataset"]["meta"].get("streamed") is True
    assert _strip(streamed.history) == _strip(memory.history) and len(memory.history) == 2
    assert streamed.metrics["accuracy"] == memory.metrics["accuracy"]
    assert streamed.metrics["loss"] == memory.metrics["loss"]
    assert streamed.config["preprocessing"] == memory.config["preprocessing"]
    for a, b in zip(streamed.model().get_weights(), memory.model().get_weights()):
        np.testing.assert_array_equal(a, b)
    # The recorded split holds out the same images (it is drawn from the labels); its checksum is the files'.
    a, b = (json.loads((run.path / "split.json").read_text()) for run in (streamed, memory))
    assert a["indices"] == b["indices"]
    log = (streamed.path / "train.log").read_text()
    assert "streaming: 58 training images decoded per batch" in log


def test_a_streamed_run_interrupted_mid_epoch_resumes_exactly(jpegs, tmp_path):
    """Ctrl-C at step 10 (inside epoch 2, with batches decoded ahead), then --resume: the run ends
    bit for bit like the uninterrupted one, still streaming (the choice is recorded)."""
    import signal

    from cnnlab.training import Run
    from cnnlab.training.callbacks import Callback
    from cnnlab.training.loop import TrainingInterrupted

    class CtrlC(Callback):
        def on_chunk_end(self, trainer, logs):
            if trainer.state.step == 10:
                os.kill(os.getpid(), signal.SIGINT)

    whole = Run.load(_run(jpegs, tmp_path, "whole", "on").path)
    with pytest.raises(TrainingInterrupted):
        _run(jpegs, tmp_path, "part", "on", callbacks=[CtrlC()])
    pointer = json.loads((tmp_path / "part" / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == 10 and pointer["batch"] == 2  # inside epoch 2
    from cnnlab.training import train

    train(resume=tmp_path / "part", verbose=False)
    part = Run.load(tmp_path / "part")
    assert part.config["train"]["stream"] == "on"
    assert _strip(part.history) == _strip(whole.history)
    assert part.metrics["loss"] == whole.metrics["loss"] and part.metrics["accuracy"] == whole.metrics["accuracy"]
    for a, b in zip(part.model().get_weights(), whole.model().get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_on_a_streamed_run_reproduces_its_test_accuracy(jpegs, tmp_path):
    proc = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        f"folder:{jpegs}",
        "--stream",
        "on",
        "--image-size",
        "16",
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "s",
    )
    assert proc.returncode == 0, proc.stderr
    assert "streaming: 58 training images decoded per batch" in proc.stdout
    run = tmp_path / "runs" / "s"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == 7
    evaluated = run_cli("evaluate", run, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["accuracy"] == metrics["accuracy"] and report["loss"] == pytest.approx(metrics["loss"], abs=1e-6)


def test_stream_on_with_a_dataset_that_is_not_a_folder_is_a_one_line_error(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        (idx / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (idx / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes((np.arange(n) % 2).astype(np.uint8)))
    common = ("--model", "softmax", "--steps", "2", "--stream", "on", "--runs-dir", tmp_path / "runs")
    proc = run_cli("train", "--dataset", f"idx:{idx}", *common, "--name", "idx")
    assert_clean_error(proc, "--stream", "folder")
    assert not (tmp_path / "runs" / "idx").exists()


def test_stream_on_with_a_folder_archive_is_a_one_line_error(jpegs, tmp_path):
    import shutil

    archive = shutil.make_archive(str(tmp_path / "jpegs"), "zip", jpegs)
    proc = run_cli(
        "train", "--model", "softmax", "--dataset", f"folder:{archive}", "--steps", "2", "--stream", "on",
        "--runs-dir", tmp_path / "runs",
    )  # fmt: skip
    assert_clean_error(proc, "--stream", "not an archive")


def test_auto_streams_when_the_decoded_images_would_not_fit_a_quarter_of_available_memory():
    from cnnlab.training.datasets import STREAM_SHARE, resolve_stream

    assert STREAM_SHARE == 0.25
    image = 224 * 224 * 3
    gib = 2**30
    assert not resolve_stream(50_000, 32 * 32 * 3, 8 * gib)  # CIFAR-10 size: 150 MiB
    assert resolve_stream(1_281_167, image, 64 * gib)  # ImageNet at 224: 180 GiB
    assert resolve_stream(10_000, image, 4 * gib)  # 1.4 GiB > 1 GiB
    assert not resolve_stream(10_000, image, 8 * gib)  # 1.4 GiB < 2 GiB
    assert resolve_stream(1, 1, 0) and not resolve_stream(0, image, gib)


def test_auto_chooses_from_the_folder_and_off_for_other_datasets(jpegs, monkeypatch):
    from cnnlab.training import datasets
    from cnnlab.training.config import TrainConfig

    config = TrainConfig(model="softmax", dataset=f"folder:{jpegs}", image_size="16", stream="auto")
    assert datasets.stream_choice(config)[0] == "off"  # 72 small images
    monkeypatch.setattr(datasets, "available_memory", lambda: 4 * 72 * 16 * 16 * 3 - 1)
    choice, why = datasets.stream_choice(config)
    assert choice == "on" and "--stream auto: 72 images at 16x16" in why
    assert datasets.stream_choice(TrainConfig(model="softmax", dataset="digits", stream="auto"))[0] == "off"
    # A run recorded before --stream existed trained in memory: its config.json reads as off, and
    # a split record keeps an unresolved auto there too.
    recorded = config.to_dict()
    del recorded["stream"]
    assert TrainConfig.from_dict(recorded).stream == "off"
    assert datasets.stream_choice(config, record={"version": 1})[0] == "off"


def test_the_streamed_sample_is_bounded_in_images_and_bytes():
    from cnnlab.training.datasets import sample_rows

    images = _Shape

    assert len(sample_rows(images(50_000, 32))) == 10_000
    assert len(sample_rows(images(50_000, 128))) == 5_461
    assert len(sample_rows(images(50_000, 224))) == 1_783
    assert sample_rows(images(300, 224)).tolist() == list(range(300))
    rows = sample_rows(images(50_000, 224))
    assert rows.tolist() == sorted(set(rows.tolist())) and rows.tolist() == sample_rows(images(50_000, 224)).tolist()


class _Shape:
    """Stands for streamed images: only the length and shape matter to the sample."""

    def __init__(self, n, side):
        self.shape = (n, side, side, 3)

    def __len__(self):
        return self.shape[0]


def test_a_file_that_does_not_decode_stops_a_streamed_run_with_a_line_naming_it(jpegs, tmp_path):
    """Streaming finds a bad file when its batch is decoded (here at the data check's sample)."""
    bad = jpegs / "class1" / "007.jpg"
    bad.write_bytes(b"not an image" * 20)
    proc = run_cli(
        "train", "--model", "softmax", "--dataset", f"folder:{jpegs}", "--stream", "on", "--image-size", "16",
        "--steps", "2", "--runs-dir", tmp_path / "runs", "--name", "bad",
    )  # fmt: skip
    assert_clean_error(proc, str(bad), "cannot read image")
