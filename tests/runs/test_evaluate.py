"""``cnnlab evaluate``: figures agree with a direct computation from the model's own predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.runs.helpers import reference_probabilities


def _assert_png(path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()


def test_evaluate_json_agrees_with_the_model(short_run, test_split):
    proc = run_cli("evaluate", short_run.path, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert {"accuracy", "loss", "per_class", "confusion_matrix", "top5_accuracy"} <= set(report)

    probabilities = reference_probabilities(short_run, test_split.x)
    labels = test_split.y
    predicted = probabilities.argmax(axis=1)
    assert report["num_examples"] == len(labels)
    assert report["accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-12)
    assert report["accuracy"] > 0.5, "a LeNet-5 trained for an epoch should beat chance (0.1) by far"
    true_probability = probabilities[np.arange(len(labels)), labels]
    assert report["loss"] == pytest.approx(-np.mean(np.log(true_probability)), rel=1e-4)
    top5 = np.mean([label in np.argsort(-row)[:5] for row, label in zip(probabilities, labels)])
    assert report["top5_accuracy"] == pytest.approx(top5, abs=1e-12)

    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == len(labels)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(labels, minlength=10))
    np.testing.assert_array_equal(matrix.sum(axis=0), np.bincount(predicted, minlength=10))
    assert np.trace(matrix) == np.sum(predicted == labels)
    for i, row in enumerate(report["per_class"]):
        assert row["class"] == short_run.class_names[i]
        assert row["support"] == matrix[i].sum()
        assert row["recall"] == pytest.approx(matrix[i, i] / max(matrix[i].sum(), 1))
        assert row["precision"] == pytest.approx(matrix[i, i] / max(matrix[:, i].sum(), 1))

    saved = json.loads((short_run.path / "evaluation-test.json").read_text())
    assert saved["accuracy"] == report["accuracy"]
    assert saved["confusion_matrix"] == report["confusion_matrix"]
    _assert_png(short_run.path / "plots" / "confusion_matrix.png")
    if np.any(predicted != labels):
        _assert_png(short_run.path / "plots" / "misclassified.png")


def test_evaluate_validation_split_and_text_report(short_run):
    from cnnlab.evaluation import evaluate

    report = evaluate(short_run, split="val")
    assert report.num_examples == len(short_run.dataset().val.y)
    assert np.asarray(report.confusion_matrix).sum() == report.num_examples
    assert (short_run.path / "evaluation-val.json").is_file()
    text = report.summary()
    assert f"accuracy {report.accuracy:.4f}" in text
    assert "true \\ pred" in text  # the confusion-matrix table
    assert len(report.confusion_table().splitlines()) == 1 + len(short_run.class_names)
