"""Every registered model builds and runs a forward pass on the current Keras backend.

The full model (not a reduced variant) at the smallest image size it accepts (at least 32),
a batch of 2, with 1- and 3-channel input; prints the build-and-forward time per model. The
test suite checks every model on TensorFlow and a subset on PyTorch and JAX; this covers the
rest:

    KERAS_BACKEND=torch python benchmarks/model_backends.py
    KERAS_BACKEND=jax   python benchmarks/model_backends.py
"""

import time

import numpy as np

from cnnlab._keras import keras
from cnnlab.models import create_model, list_models, model_info


def check(name: str) -> tuple[int, float]:
    """Build ``name`` for 1- and 3-channel input and run a forward pass; (size, seconds)."""
    size = max(model_info(name).min_size, 32)
    start = time.perf_counter()
    for channels in (1, 3):
        model = create_model(name, input_shape=(size, size, channels), num_classes=10)
        images = np.random.default_rng(0).random((2, size, size, channels), dtype=np.float32)
        logits = keras.ops.convert_to_numpy(model(images, training=False))
        if logits.shape != (2, 10) or not np.isfinite(logits).all():
            raise SystemExit(f"{name}: bad output {logits.shape} at {channels} channel(s)")
    return size, time.perf_counter() - start


def main() -> None:
    backend = keras.backend.backend()
    names = list_models()
    for name in names:
        size, seconds = check(name)
        print(f"{backend:10s} {name:22s} {size:3d}x{size:<3d} ok  {seconds:6.1f} s", flush=True)
    print(f"{backend}: {len(names)}/{len(names)} models ran a forward pass at 1 and 3 channels")


if __name__ == "__main__":
    main()
