"""Where a Keras training step on the torch backend goes: torch's kernels against Python.

    python benchmarks/torch_step_profile.py              # lenet5, batch 100
    python benchmarks/torch_step_profile.py --model mnist_cnn --batch-size 64

Builds the network from the registry on the torch backend with Keras's Adam and the accuracy
metric, times ``train_on_batch`` on random images, then runs the same steps under cProfile and
prints the functions with the most time of their own: torch's built-in kernels (``run_backward``,
``conv2d``, ...) against Keras's Python around them. cProfile slows Python-heavy code, so the
unprofiled milliseconds per step come first.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "torch"

    import numpy as np

    from cnnlab._keras import keras
    from cnnlab.models import create_model, model_info

    info = model_info(args.model)
    shape = (
        max(info.min_size or 0, info.input_shape[0]),
        max(info.min_size or 0, info.input_shape[1]),
        info.input_shape[2],
    )
    model = create_model(args.model, shape, num_classes=10)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, *shape), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)
    for _ in range(5):
        model.train_on_batch(x, y)
    began = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    print(f"{args.model}, batch {args.batch_size}: {1e3 * (time.perf_counter() - began) / args.steps:.1f} ms per step")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
