"""``cnnlab explain`` and ``cnnlab visualize`` as a user runs them, on a short real MNIST run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_clean_error, run_cli


def test_explain_writes_overlays_for_every_method(mnist_run, tmp_path):
    digit = mnist_run.dataset().test.x[0, ..., 0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    out = tmp_path / "maps"
    proc = run_cli(
        "explain",
        mnist_run.path,
        tmp_path / "digit.png",
        "--method",
        "all",
        "--out",
        out,
        "--steps",
        "16",
        "--samples",
        "4",
    )
    assert proc.returncode == 0, proc.stderr
    for method in ("gradcam", "gradcam++", "saliency", "smoothgrad", "integrated-gradients", "occlusion"):
        picture = Image.open(out / f"digit-{method}.png")
        assert picture.size[0] > 300 and np.asarray(picture).std() > 0, method
        assert f"{method}: {out / f'digit-{method}.png'}" in proc.stdout
    assert (out / "summary.png").is_file()


def test_explain_bad_layer_and_method_are_one_line_errors(mnist_run, tmp_path):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    proc = run_cli("explain", mnist_run.path, tmp_path / "blank.png", "--layer", "nope", "--out", tmp_path / "o")
    assert_clean_error(proc, "--layer", "nope", "conv1", "conv2")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())

    from cnnlab.errors import ConfigError
    from cnnlab.explain import explain

    with pytest.raises(ConfigError, match="--method: expected one of .*got 'magic'"):
        explain(mnist_run, tmp_path / "blank.png", ["magic"])


def test_visualize_writes_pictures_and_a_report(mnist_run):
    proc = run_cli("visualize", mnist_run.path, "--samples", "150")
    assert proc.returncode == 0, proc.stderr
    inside = Path(mnist_run.path) / "plots" / "inside"
    for name in ("filters.png", "feature_maps.png", "embedding_tsne.png", "top_losses.png", "confused_pairs.png"):
        assert Image.open(inside / name).size[0] > 200, name
    report = (Path(mnist_run.path) / "report.html").read_text()
    assert "plots/inside/embedding_tsne.png" in report and "plots/confusion_matrix.png" in report
    for link in __import__("re").findall(r"src='([^']+)'", report):
        assert (Path(mnist_run.path) / link).is_file(), link  # every picture opens from disk, no server
