"""Heat maps and overlays as images: NumPy/Pillow for the server, matplotlib figures for files.

Figures use :class:`matplotlib.figure.Figure` with the Agg canvas, never ``pyplot``, and PNG
files are written atomically, as in :mod:`cnnlab.visualization.plots`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

COLORMAP = "jet"
MIN_SIDE = 128  # overlays are enlarged to at least this many pixels a side


def normalize_map(heat: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """A map scaled to [0, 1] for display: negatives to 0, the ``percentile`` value to 1."""
    heat = np.maximum(np.nan_to_num(np.asarray(heat, np.float64)), 0.0)
    top = np.percentile(heat, percentile) if heat.size else 0.0
    if top <= 0:
        top = heat.max(initial=0.0)
    return (np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)).astype(np.float32)


def heat_rgb(heat: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) of a [0, 1] map through the colour map."""
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.clip(heat, 0, 1))[..., :3] * 255).round().astype(np.uint8)


def as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, min_side: int = MIN_SIDE) -> np.ndarray:
    """uint8 RGB: the image (enlarged with visible pixels) blended with the coloured, normalised map."""
    from PIL import Image

    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    scale = max(1, -(-min_side // min(height, width)))
    size = (width * scale, height * scale)
    big = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST), np.float32)
    heat = np.asarray(Image.fromarray(normalize_map(heat), mode="F").resize(size, Image.Resampling.BILINEAR))
    blended = (1 - alpha) * big + alpha * heat_rgb(heat).astype(np.float32)
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _imshow(ax, image) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()


def _save(fig, path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnnlab.io import atomic_path

    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def top_line(top: Sequence[dict], k: int = 3) -> str:
    return ", ".join(f"{t['class']} {t['probability']:.2f}" for t in top[:k])


def write_panels(image: np.ndarray, heat: np.ndarray, path: str | os.PathLike, title: str) -> Path:
    """One PNG: the image, the heat map and the overlay side by side, under ``title``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.6, 2.6), layout="constrained")
    axes = fig.subplots(1, 3)
    _imshow(axes[0], image)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(normalize_map(heat), cmap=COLORMAP, vmin=0, vmax=1, interpolation="bilinear")
    axes[1].set_axis_off()
    axes[1].set_title("heat map", fontsize=9)
    axes[2].imshow(overlay(image, heat))
    axes[2].set_axis_off()
    axes[2].set_title("overlay", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def write_summary(
    rows: Sequence[tuple[np.ndarray, str, dict[str, np.ndarray]]], methods: Sequence[str], path: str | os.PathLike
) -> Path:
    """A grid: one row per image (the image titled ``label``, then one overlay per method)."""
    from matplotlib.figure import Figure

    columns = 1 + len(methods)
    fig = Figure(figsize=(1.45 * columns, 1.6 * len(rows) + 0.2), layout="constrained")
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, (image, label, maps) in enumerate(rows):
        _imshow(axes[r, 0], image)
        axes[r, 0].set_title(label, fontsize=7)
        for c, method in enumerate(methods, start=1):
            axes[r, c].imshow(overlay(image, maps[method]))
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(method, fontsize=8)
    return _save(fig, path)
