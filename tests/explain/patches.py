"""A synthetic dataset whose class is decided by one bright patch, for tests that know the right answer.

Every image is dim noise with one bright 8x8 patch at a random place; the class is the patch's
pattern (solid, checkerboard, horizontal or vertical stripes), so the patch is the only evidence
for every class and a correct explanation must point at it.
"""

from __future__ import annotations

import numpy as np

SIZE = 32
PATCH = 8
CLASSES = ["solid", "checkerboard", "horizontal", "vertical"]


def _pattern(label: int) -> np.ndarray:
    rows, cols = np.indices((PATCH, PATCH)) // 2
    on = [np.ones((PATCH, PATCH), bool), (rows + cols) % 2 == 0, rows % 2 == 0, cols % 2 == 0][label]
    return np.where(on, 240, 110).astype(np.uint8)


def patch_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (N, 32, 32, 1) images, labels and each patch's corner (row, col)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (count, SIZE, SIZE, 1), dtype=np.uint8)
    y = (np.arange(count) % len(CLASSES)).astype(np.int64)
    corners = rng.integers(1, SIZE - PATCH - 1, (count, 2))
    for i, label in enumerate(y):
        top, left = corners[i]
        x[i, top : top + PATCH, left : left + PATCH, 0] = _pattern(int(label))
    return x, y, corners
