"""A grid of images with a title over each: dataset samples, misclassified examples.

Richard Kuo's and Jake Tae's tutorials begin by plotting a few training images with their labels; this is that figure,
for any dataset and any number of images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnlab.errors import DataError


def parse_grid(spec: str) -> tuple[int, int]:
    """``"4x4"`` -> (rows, columns)."""
    try:
        rows, cols = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise DataError(f"--grid: expected ROWSxCOLUMNS such as 4x4, got {spec!r}") from None
    if rows < 1 or cols < 1 or rows * cols > 400:
        raise DataError(f"--grid: expected 1 to 400 cells, got {spec!r}")
    return rows, cols


def image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str],
    out_path: str | os.PathLike,
    *,
    columns: int | None = None,
    suptitle: str | None = None,
    title_colors: Sequence[str] | None = None,
    cell_inches: float = 1.4,
    dpi: int = 120,
) -> Path:
    """Draw ``images`` (uint8 0..255 or float 0..1; (H, W), (H, W, 1) or (H, W, 3)) in a grid, each
    titled with ``titles[i]`` (coloured ``title_colors[i]``), and write a PNG to ``out_path`` atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cnnlab.io import atomic_path

    images = list(images)
    if not images:
        raise DataError("image_grid: no images to draw")
    if len(titles) != len(images):
        raise DataError(f"image_grid: {len(images)} images but {len(titles)} titles")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    fig = Figure(figsize=(columns * cell_inches, rows * cell_inches + (0.4 if suptitle else 0)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(images):
            continue
        image = np.asarray(images[i])
        gray = image.ndim == 2 or image.shape[-1] == 1
        vmax = 255 if image.dtype == np.uint8 else 1.0
        ax.imshow(
            image.squeeze(-1) if image.ndim == 3 and gray else image,
            cmap="gray" if gray else None,
            vmin=0,
            vmax=vmax,
            interpolation="nearest",
        )
        color = title_colors[i] if title_colors is not None else "black"
        ax.set_title(str(titles[i]), fontsize=8, color=color)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    out_path = Path(out_path)
    with atomic_path(out_path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out_path
