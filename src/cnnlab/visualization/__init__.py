"""Figures: sample-image grids (:mod:`.grid`) and run plots (:mod:`.plots`).

Everything draws on :class:`matplotlib.figure.Figure` with the Agg canvas (no ``pyplot``, no
display) and writes PNGs atomically. Submodules import matplotlib only when called.
"""

from __future__ import annotations


def image_grid(*args, **kwargs):
    """See :func:`cnnlab.visualization.grid.image_grid`."""
    from cnnlab.visualization.grid import image_grid as draw

    return draw(*args, **kwargs)
