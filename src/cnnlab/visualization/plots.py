"""Figures of a run: learning curves, learning-rate schedule, confusion matrix, misclassified images.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``: no global figure state, no display needed, and nothing to close if a plot fails
halfway. Every PNG is written atomically (:func:`cnnlab.io.atomic_path`), so a run folder never
holds half a figure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

PLOTS_DIR = "plots"


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnnlab.io import atomic_path

    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="tight")


def _column(history: Sequence[dict], key: str) -> np.ndarray:
    """One history column as floats; missing or empty cells (no validation split) become NaN."""
    values = []
    for row in history:
        value = row.get(key)
        values.append(np.nan if value is None or value == "" else float(value))
    return np.asarray(values, dtype=np.float64)


def _plot_series(ax, epochs: np.ndarray, series: dict[str, np.ndarray]) -> None:
    """Plot each named series that has at least one value; markers make a one-epoch run visible."""
    for label, values in series.items():
        if np.isfinite(values).any():
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
    if ax.lines:
        ax.legend()
    _integer_epochs(ax)
    ax.grid(True, alpha=0.3)


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_learning_curves(history: Sequence[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy (top) and cross-entropy loss (bottom) per epoch, train and validation.

    The two stacked panels are Jake Tae's ``show_learning_curve`` ("Convolutional Neural Network with Keras"),
    drawn from the run's ``history.csv`` rows instead of a Keras ``History``.
    """
    if not history:
        from cnnlab.errors import RunError

        raise RunError(f"{path}: the run has no completed epoch to plot (history is empty)")
    epochs = _column(history, "epoch")
    fig = _new_figure(6.4, 6.4)
    top, bottom = fig.subplots(2, 1)
    _plot_series(top, epochs, {"Train": _column(history, "accuracy"), "Validation": _column(history, "val_accuracy")})
    top.set_title("Model Accuracy" if title is None else f"{title}: accuracy")
    top.set_ylabel("Accuracy")
    top.set_xlabel("Epoch")
    _plot_series(bottom, epochs, {"Train": _column(history, "loss"), "Validation": _column(history, "val_loss")})
    bottom.set_title("Cross Entropy Loss")
    bottom.set_ylabel("Loss")
    bottom.set_xlabel("Epoch")
    return save_figure(fig, path)


def plot_learning_rate(
    history: Sequence[dict], path: str | os.PathLike, schedule: tuple[np.ndarray, np.ndarray] | None = None
) -> Path:
    """The learning rate against the optimizer step.

    ``schedule`` is ``(steps, rates)`` of the configured schedule over the whole run (a line);
    the rate recorded at the end of each epoch in ``history`` is drawn on it as markers.
    """
    if not history and schedule is None:
        from cnnlab.errors import RunError

        raise RunError(f"{path}: the run has no completed epoch to plot (history is empty)")
    fig = _new_figure(6.4, 3.6)
    ax = fig.subplots()
    rates = _column(history, "lr")
    if schedule is not None:
        ax.plot(*schedule, label="schedule")
        rates = np.concatenate([rates, schedule[1]])
    if history:
        ax.plot(_column(history, "step"), _column(history, "lr"), "o", markersize=4, label="end of epoch")
    ax.set_title("Learning-rate schedule")
    ax.set_xlabel("Optimizer step")
    ax.set_ylabel("Learning rate")
    finite = rates[np.isfinite(rates)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")  # step decays span decades; on a linear axis the tail is invisible
    ax.legend()
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def planned_learning_rate(run, points: int = 200) -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps, rates)``: the run's configured schedule at up to ``points`` steps, or None if unknown.

    Rebuilt from the run config with the training code's own schedule factory
    (:func:`cnnlab.training.optim.learning_rate`), so the figure shows what the optimizer used.
    """
    total = int(run.config.get("total_steps") or 0)
    if total <= 0:
        return None
    from cnnlab.backend import quiet_native_stderr
    from cnnlab.training.optim import learning_rate, rate_at

    rate = learning_rate(run.train_config, total)
    steps = np.unique(np.linspace(0, total, min(points, total + 1)).round().astype(np.int64))
    with quiet_native_stderr():  # the first TensorFlow op logs a CUDA error on CPU-only machines
        return steps, np.array([rate_at(rate, int(step)) for step in steps])


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | os.PathLike, title: str = "Confusion matrix"
) -> Path:
    """Counts as a heat map, true class down and predicted class across, each cell labelled."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    side = min(max(4.0, 0.55 * n + 2.0), 16.0)
    fig = _new_figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_xticks(range(n), labels=list(class_names), rotation=45 if n > 10 or max(map(len, class_names)) > 3 else 0)
    ax.set_yticks(range(n), labels=list(class_names))
    if n <= 30:  # beyond that the numbers are unreadable; the colours still tell the story
        threshold = matrix.max(initial=0) / 2
        for (row, col), count in np.ndenumerate(matrix):
            ax.text(
                col,
                row,
                str(int(count)),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if count > threshold else "black",
            )
    return save_figure(fig, path)


def plot_misclassified(
    images: np.ndarray,
    true_labels: Sequence[int],
    predicted_labels: Sequence[int],
    class_names: Sequence[str],
    path: str | os.PathLike,
    probabilities: Sequence[float] | None = None,
    columns: int = 6,
) -> Path:
    """A grid of uint8 images (N, H, W, C), each titled ``true X`` / ``pred Y (p)`` in red.

    Drawn by the sample-grid function (:func:`cnnlab.visualization.grid.image_grid`).
    """
    from cnnlab.visualization.grid import image_grid

    titles = []
    for i, (true, pred) in enumerate(zip(true_labels, predicted_labels)):
        confidence = "" if probabilities is None else f" ({probabilities[i]:.2f})"
        titles.append(f"true {class_names[true]}\npred {class_names[pred]}{confidence}")
    return image_grid(
        images,
        titles,
        path,
        columns=min(columns, len(titles)),
        suptitle="Misclassified examples",
        title_colors=["firebrick"] * len(titles),
        cell_inches=1.7,
    )


def plot_run(run_or_path) -> list[Path]:
    """Draw a run's learning curves and learning-rate schedule into ``RUN/plots/``; return the paths.

    This is ``cnnlab plot RUN``.
    """
    from cnnlab.inference.forward import open_run

    run = open_run(run_or_path)
    history = list(run.history)
    plots = Path(run.path) / PLOTS_DIR
    name = Path(run.path).name
    return [
        plot_learning_curves(history, plots / "learning_curves.png", title=name),
        plot_learning_rate(history, plots / "learning_rate.png", schedule=planned_learning_rate(run)),
    ]
