"""Evaluating a trained run: metrics, per-class report, confusion matrix (``cnnlab evaluate``)."""

from cnnlab.evaluation.report import Report, evaluate

__all__ = ["Report", "evaluate"]
