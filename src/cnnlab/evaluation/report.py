"""``evaluate(run)``: test (or validation) metrics of a trained run, with figures and a JSON record."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError, RunError
from cnnlab.evaluation import metrics
from cnnlab.inference.forward import (
    DEFAULT_BATCH_SIZE,
    RunLike,
    check_batch_size,
    load_model,
    open_run,
    predict_logits,
    softmax,
)

SPLITS = ("test", "val")
# The misclassified grid shows the most confident mistakes first: those say most about the model.
MAX_MISCLASSIFIED = 36


@dataclass
class Report:
    """Metrics of one run on one split. ``to_dict()`` is what ``evaluate --json`` prints."""

    run: str
    split: str
    checkpoint: str
    num_examples: int
    loss: float
    accuracy: float
    top5_accuracy: float | None
    per_class: list[dict]
    confusion_matrix: list[list[int]]
    class_names: list[str]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def confusion_table(self) -> str:
        return metrics.format_confusion_table(np.asarray(self.confusion_matrix), self.class_names)

    def summary(self) -> str:
        """Human-readable report: headline figures, per-class table, confusion matrix, files written."""
        top5 = "" if self.top5_accuracy is None else f"   top-5 accuracy {self.top5_accuracy:.4f}"
        lines = [
            f"{self.run}: {self.split} split, {self.num_examples} images, {self.checkpoint} model",
            f"loss {self.loss:.4f}   accuracy {self.accuracy:.4f}{top5}",
            "",
            metrics.format_per_class_table(self.per_class),
            "",
            "confusion matrix (rows: true class, columns: predicted class)",
            self.confusion_table(),
        ]
        if self.files:
            lines += ["", *(f"{kind}: {path}" for kind, path in self.files.items())]
        return "\n".join(lines)


def evaluate(
    run_or_path: RunLike,
    split: str = "test",
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    which: str = "final",
    write: bool = True,
) -> Report:
    """Evaluate a run's model on its dataset's ``split`` ("test" or "val").

    Reports the cross-entropy loss, accuracy, top-5 accuracy (only with more than five classes),
    per-class precision / recall / F1 / support and the confusion matrix. With ``write`` (the
    default) it also writes, into the run folder, ``plots/confusion_matrix.png``,
    ``plots/misclassified.png`` (when there are mistakes) and ``evaluation-<split>.json``, each
    atomically; the report's ``files`` lists them.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    check_batch_size(batch_size)
    run = open_run(run_or_path)
    data = run.dataset().split(split)  # a DataError naming the dataset if the split is absent
    if len(data) == 0:
        raise RunError(f"{run.path}: the run's dataset has no {split!r} split to evaluate on")
    class_names = list(run.class_names)
    # with the run's test-time augmentation, so the report agrees with the run's own test figure
    logits = predict_logits(load_model(run, which), data.x, run.preprocessing, batch_size, tta=run.train_config.tta)
    probabilities = softmax(logits)
    labels = np.asarray(data.y, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    matrix = metrics.confusion_matrix(labels, predicted, len(class_names))
    report = Report(
        run=str(run.path),
        split=split,
        checkpoint=which,
        num_examples=len(labels),
        loss=metrics.cross_entropy(logits, labels),
        accuracy=metrics.accuracy(labels, predicted),
        top5_accuracy=metrics.top_k_accuracy(labels, probabilities, metrics.TOP_K),
        per_class=metrics.per_class_metrics(labels, predicted, class_names),
        confusion_matrix=matrix.tolist(),
        class_names=class_names,
    )
    if write:
        report.files = _write_outputs(Path(run.path), report, data.x, labels, predicted, probabilities)
    return report


def _write_outputs(folder: Path, report: Report, images, labels, predicted, probabilities) -> dict[str, str]:
    """Figures and the JSON record of ``report``, written atomically into the run folder."""
    from cnnlab.io import atomic_write_json
    from cnnlab.visualization import plots

    suffix = "" if report.split == "test" else f"-{report.split}"
    files = {}
    files["confusion matrix"] = plots.plot_confusion_matrix(
        np.asarray(report.confusion_matrix),
        report.class_names,
        folder / plots.PLOTS_DIR / f"confusion_matrix{suffix}.png",
        title=f"Confusion matrix ({report.split}, accuracy {report.accuracy:.4f})",
    )
    wrong = np.flatnonzero(predicted != labels)
    if len(wrong):
        confidence = probabilities[wrong, predicted[wrong]]
        shown = wrong[np.argsort(-confidence, kind="stable")][:MAX_MISCLASSIFIED]
        files["misclassified"] = plots.plot_misclassified(
            images[shown],
            labels[shown],
            predicted[shown],
            report.class_names,
            folder / plots.PLOTS_DIR / f"misclassified{suffix}.png",
            probabilities=probabilities[shown, predicted[shown]],
        )
    files["report"] = folder / f"evaluation-{report.split}.json"
    files = {kind: os.fspath(path) for kind, path in files.items()}
    record = report.to_dict()
    record["files"] = files
    atomic_write_json(files["report"], record)
    return files
