"""Checks of builder options that every level's twin of a network shares.

Keras-free, so that the NumPy level (``cnnlab.scratch``) checks its options with the same
function and the same message as the Keras builder and the low-level twin.
"""

from __future__ import annotations

from cnnlab.errors import ModelError


def mnist_cnn_widths(filters, units) -> tuple[tuple[int, int], int]:
    """mnist_cnn's ``filters`` (its two convolutions' widths) and ``units`` (its hidden dense layer's),
    as integers; a one-line ModelError for anything but two positive widths and one positive count."""
    try:
        widths = tuple(int(f) for f in filters)
        count = int(units)
    except (TypeError, ValueError):
        widths, count = (), 0
    if len(widths) != 2 or min(widths) < 1 or count < 1:
        raise ModelError(f"mnist_cnn: filters takes two positive widths and units one, got {filters!r}, {units!r}")
    return widths, count
