"""The contract between the benchmark harness and each contender process, and its work budget.

Every contender (``python -m cnnlab.bench.contenders.plain_keras``, ``...contenders.plain_torch``,
``python -m cnnlab.bench.worker``) is a separate program started in a fresh process with the
same command-line options, and answers with one line on stdout::

    CNNLAB_BENCH_RESULT {"images_per_s": [...], "warmup_s": ..., ...}

This module imports only the standard library and NumPy: importing it must not change how any
framework is set up (no thread settings, no Keras), or the "plain" contenders would no longer be
plain.

Throughput protocol: build the network, run ``warmup_steps`` training steps untimed (graph
tracing, XLA compilation, memory allocation), then ``repeats`` timed segments of ``steps``
steps each; each segment gives one images-per-second figure, and the harness takes medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

RESULT_PREFIX = "CNNLAB_BENCH_RESULT "

# The reference documents' networks: input shape (H, W, C) and training batch size.
#   lenet5     tntrung's tutorial: MNIST padded to 32x32, Adam 1e-3, batch 100
#   mnist_cnn  Hsi-Pin Ma's lecture: MNIST 28x28, Adam 1e-4, batch 64
#   vgg_bn     Jake Tae's tutorial: CIFAR-10 32x32x3, Adam (defaults), batch 64
#   airbench   not a reference document's: Keller Jordan's airbench94 at its batch 1024, raced as
#              a recipe (fast-cifar10-90) against the same network and recipe in plain PyTorch
INPUT_SHAPES = {"lenet5": (32, 32, 1), "mnist_cnn": (28, 28, 1), "vgg_bn": (32, 32, 3), "airbench": (32, 32, 3)}
REFERENCE_BATCH = {"lenet5": 100, "mnist_cnn": 64, "vgg_bn": 64, "airbench": 1024}
LEARNING_RATES = {"lenet5": 1e-3, "mnist_cnn": 1e-4, "vgg_bn": 1e-3}
DATASETS = {"lenet5": "mnist", "mnist_cnn": "mnist", "vgg_bn": "cifar10_jpg", "airbench": "cifar10_jpg"}
#: Networks raced as a whole recipe (``cnnlab train --recipe``), not as the reference Adam step.
RECIPES = {"airbench": "fast-cifar10-90"}
NUM_CLASSES = 10

# Steps per timed segment, chosen so a segment lasts ~1-3 s on a 2-core CPU (long enough that
# timer and scheduling noise is small, short enough that the whole benchmark stays in minutes);
# an airbench step of 1,024 images takes 1-4 s.
SEGMENT_STEPS = {"lenet5": 150, "mnist_cnn": 40, "vgg_bn": 15, "airbench": 2}
#: Fewer warm-up steps than the budget's for networks whose steps take seconds.
WARMUP_STEPS = {"airbench": 4}


@dataclass
class Budget:
    """How much work each measurement does; ``quick`` is for smoke runs, not for figures."""

    rounds: int = 3
    repeats: int = 3
    warmup_steps: int = 10
    step_scale: float = 1.0
    baseline_rounds: int | None = None  # tta: seeds the plain baseline runs for (None: every round)
    segment_steps: int | None = None  # steps per timed segment for every network (None: SEGMENT_STEPS scaled)

    @classmethod
    def quick(cls) -> Budget:
        return cls(rounds=1, repeats=2, warmup_steps=3, step_scale=0.25)

    def warmup(self, model: str) -> int:
        return min(self.warmup_steps, WARMUP_STEPS.get(model, self.warmup_steps))

    def steps(self, model: str) -> int:
        if self.segment_steps is not None:
            return self.segment_steps
        return max(2, round(SEGMENT_STEPS[model] * self.step_scale))


def parse_args(description: str, argv: list[str] | None = None, extra: Callable | None = None) -> argparse.Namespace:
    """The options every contender accepts (``extra(parser)`` may add its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=sorted(INPUT_SHAPES), default="mnist_cnn")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the reference batch size")
    parser.add_argument("--steps", type=int, default=50, help="training steps per timed segment")
    parser.add_argument("--repeats", type=int, default=3, help="timed segments")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps first")
    parser.add_argument(
        "--data",
        choices=("synthetic", "real"),
        default="synthetic",
        help="synthetic: random uint8 images of the right shape (throughput does not depend on pixel "
        "values); real: the dataset through cnnlab.data",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = REFERENCE_BATCH[args.model]
    return args


def load_images(model: str, count: int, source: str = "synthetic", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 images (N, H, W, C) and int64 labels for ``model``'s reference dataset.

    ``real`` reads the whole training split through :mod:`cnnlab.data` (MNIST is zero-padded to
    32x32 for LeNet-5, as tntrung's tutorial does) and returns all of it, repeated if ``count`` is larger:
    a real training process holds its whole data set in memory, which the memory figures must
    include. The environment is restored afterwards, so loading data cannot change a plain
    contender's thread settings.
    """
    h, w, c = INPUT_SHAPES[model]
    if source == "synthetic":
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (count, h, w, c), dtype=np.uint8), rng.integers(0, NUM_CLASSES, count)
    saved = dict(os.environ)
    try:
        from cnnlab.data import load_dataset

        train = load_dataset(DATASETS[model]).train
    finally:
        os.environ.clear()
        os.environ.update(saved)
    x, y = train.x, train.y.astype(np.int64)
    pad_h, pad_w = (h - x.shape[1]) // 2, (w - x.shape[2]) // 2
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    reps = -(-count // len(x))
    if reps > 1:
        x, y = np.concatenate([x] * reps), np.concatenate([y] * reps)
    return x, y


def time_segments(run_segment: Callable[[], None], images: int, repeats: int) -> dict[str, list[float]]:
    """Images per second of each of ``repeats`` calls to ``run_segment`` (which trains ``images`` images).

    ``images_per_s`` is per wall-clock second, the figure that matters. ``images_per_cpu_s`` is per
    second of CPU time of this process (all its threads): on a machine shared with other jobs it
    is much less disturbed by time slicing, so it helps compare contenders of the same thread
    count on a busy machine (threads that spin while waiting inflate it, so never compare thread
    settings with it).
    """
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run_segment()
        wall.append(images / (time.perf_counter() - start))
        cpu.append(images / max(time.process_time() - start_cpu, 1e-9))
    return {"images_per_s": wall, "images_per_cpu_s": cpu}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict) -> None:
    """Print the one result line the harness reads (and flush, the process may be killed next)."""
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict | None:
    """The result a contender printed, or ``None`` if it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None
