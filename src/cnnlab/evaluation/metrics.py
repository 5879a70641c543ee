"""Classification metrics from labels and logits, on NumPy arrays (no model, no run).

The per-class figures and the confusion matrix come from scikit-learn
(https://scikit-learn.org/stable/modules/model_evaluation.html#classification-metrics);
this module only fixes the label set, so that a class absent from a small split still gets
its row, and turns the results into plain Python values for JSON.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

# Top-5 accuracy only says something when there are more than five classes to choose from.
TOP_K = 5


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy of integer ``labels`` under ``logits`` (no label smoothing)."""
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(predicted)))


def top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int = TOP_K) -> float | None:
    """Fraction of examples whose true class is among the ``k`` highest scores; None if ``k`` >= classes."""
    num_classes = scores.shape[-1]
    if num_classes <= k:
        return None
    return float(top_k_accuracy_score(labels, scores, k=k, labels=np.arange(num_classes)))


def per_class_metrics(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support of every class, in class order.

    A class never predicted has precision 0 rather than a warning (``zero_division=0``).
    """
    indices = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=indices, zero_division=0)
    return [
        {
            "class": name,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    ]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    return _sk_confusion_matrix(labels, predicted, labels=np.arange(num_classes))


def format_confusion_table(matrix: np.ndarray, class_names: list[str], max_name: int = 10) -> str:
    """The confusion matrix as a fixed-width text table, true classes down, predictions across."""
    names = [name[:max_name] for name in class_names]
    width = max(max(len(name) for name in names), len(str(int(matrix.max(initial=0)))), 4)
    corner = "true \\ pred"
    label_width = max(len(corner), width)
    header = corner.ljust(label_width) + " " + " ".join(name.rjust(width) for name in names)
    rows = [
        name.ljust(label_width) + " " + " ".join(str(int(count)).rjust(width) for count in row)
        for name, row in zip(names, matrix)
    ]
    return "\n".join([header, *rows])


def format_per_class_table(per_class: list[dict]) -> str:
    """Per-class precision / recall / F1 / support, one line each, like scikit-learn's report."""
    width = max(len("class"), *(len(row["class"]) for row in per_class))
    lines = [f"{'class':<{width}}  precision  recall      f1  support"]
    lines += [
        f"{row['class']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7d}"
        for row in per_class
    ]
    return "\n".join(lines)
