"""cnnlab's fused batch norm on the torch backend against Keras's own, side by side in one process.

    python benchmarks/batchnorm_torch.py                 # vgg_bn, batch 64
    python benchmarks/batchnorm_torch.py --model airbench --rounds 4

Builds the network from the registry on the torch backend, compiles it with Keras's Adam and
times ``train_on_batch`` on random images in alternating blocks: one with
``cnnlab.models.layers.BatchNormalization``'s training call on ``torch.native_batch_norm``, one
with Keras's code (the fused path switched off for the block). Prints the median milliseconds per
step of each, their ratio, and the host's CPU steal over the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg_bn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6, help="blocks of each kind, alternating")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per block")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "torch"

    import numpy as np

    from cnnlab._keras import keras
    from cnnlab.bench.machine import cpu_times, steal_fraction
    from cnnlab.models import create_model, model_info
    from cnnlab.models.layers import BatchNormalization

    info = model_info(args.model)
    size = max(info.min_size or 0, 32)
    shape = (size, size, info.input_shape[2])
    model = create_model(args.model, shape, num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, *shape), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)

    fused = BatchNormalization._fusable
    kinds = {"Keras's batch norm": lambda self, inputs, mask: False, "cnnlab's fused batch norm": fused}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    start = cpu_times()
    for _ in range(args.rounds):
        for kind, fusable in kinds.items():
            BatchNormalization._fusable = fusable
            model.train_on_batch(x, y)  # untimed: the first step after a switch
            began = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[kind].append(1e3 * (time.perf_counter() - began) / args.steps)
    BatchNormalization._fusable = fused
    steal = 100.0 * (steal_fraction(start, cpu_times()) or 0.0)

    print(f"{args.model}, batch {args.batch_size}, torch backend, float32; ms per training step:")
    for kind, values in times.items():
        print(f"  {kind}: median {statistics.median(values):.1f} (blocks: {', '.join(f'{v:.0f}' for v in values)})")
    keras_ms, fused_ms = (statistics.median(values) for values in times.values())
    print(f"  Keras's / cnnlab's: {keras_ms / fused_ms:.2f}x")
    print(f"host CPU steal during the run: {steal:.1f}%")


if __name__ == "__main__":
    main()
