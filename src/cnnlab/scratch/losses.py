"""Softmax cross-entropy on logits with integer labels, mean over the batch.

The same loss as Keras's ``SparseCategoricalCrossentropy(from_logits=True)`` with its default
``sum_over_batch_size`` reduction. Computed through log-softmax with the row maximum subtracted,
so large logits do not overflow.

Source: Stanford CS231n assignment 1/2, ``softmax_loss``.
"""

from __future__ import annotations

import numpy as np

from cnnlab.scratch.convolution import ShapeError

__all__ = ["softmax_cross_entropy", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """``(loss, dloss/dlogits)`` for logits ``(N, classes)`` and integer labels ``(N,)``.

    ``loss = -mean_n log softmax(logits_n)[labels_n]``; its gradient is
    ``(softmax(logits) - onehot(labels)) / N``.
    """
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ShapeError(f"logits: expected shape (batch, classes), got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ShapeError(f"labels: expected shape ({logits.shape[0]},) to match the logits, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ShapeError(f"labels: expected integer class indices, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ShapeError(f"labels: expected values in [0, {logits.shape[1]}), got {labels.min()}..{labels.max()}")
    n = logits.shape[0]
    log_probs = log_softmax(logits)
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    return float(loss), dlogits / n
