"""Keras's torch backend without two copies around every convolution and pooling.

Keras keeps images channels-last (NHWC), as cnnlab's models and data do; PyTorch's convolution and
pooling take their input as NCHW *shape*, in either memory layout. Before each one, Keras's torch
backend (``keras.src.backend.torch.nn._transpose_spatial_inputs``, Keras 3.6 to 3.15) permutes the
NHWC tensor to NCHW and makes it ``contiguous()``: a copy into NCHW memory. Its convolution then
converts that to channels-last memory (``_maybe_convert_to_channels_last``), a second copy back to
the layout it started from, and the backward pass pays for both again. The permuted view of an
NHWC tensor already *is* an NCHW tensor in channels-last memory, so asking for that layout instead
copies nothing.

Measured (one thread, batch 100 for LeNet-5 and 64 for the MNIST CNN, ``train_on_batch``, the
median of alternating runs): LeNet-5 from 47-84 to 33-35 ms per step, the MNIST CNN from 107-136
to 82-88 ms (docs/performance.md, "Every backend"). The results are Keras's own: bit for bit for
most models, and to float32 rounding where oneDNN picks another kernel for the layout (airbench's
3-channel stem); tests/models/test_torch_layout.py checks every model in the registry, outputs
and gradients.

This replaces a private function of Keras, so it is applied only where that function exists, and
only to 4-D tensors (2-D convolution and pooling); anything else goes to Keras's own code.
``CNNLAB_TORCH_LAYOUT=keras`` turns it off.
"""

from __future__ import annotations

import os

ENV = "CNNLAB_TORCH_LAYOUT"
_applied = False


def apply() -> bool:
    """Install the copy-free permute in Keras's torch backend; True if it is (now) installed."""
    global _applied
    if _applied:
        return True
    if os.environ.get(ENV, "").strip().lower() == "keras":
        return False
    try:
        import keras.src.backend.torch.nn as torch_nn
        import torch
    except ImportError:
        return False
    original = getattr(torch_nn, "_transpose_spatial_inputs", None)
    if original is None:  # another Keras: leave it alone
        return False

    def transpose_spatial_inputs(inputs):
        if inputs.ndim == 4:
            # NHWC -> NCHW shape, channels-last memory: a view of an NHWC-contiguous tensor, no copy.
            return torch.permute(inputs, (0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        return original(inputs)

    transpose_spatial_inputs.keras_original = original
    torch_nn._transpose_spatial_inputs = transpose_spatial_inputs
    _applied = True
    return True


def remove() -> None:
    """Put Keras's own function back (tests compare the two)."""
    global _applied
    import keras.src.backend.torch.nn as torch_nn

    original = getattr(torch_nn._transpose_spatial_inputs, "keras_original", None)
    if original is not None:
        torch_nn._transpose_spatial_inputs = original
    _applied = False
