"""Data parallel on one host: 2 processes x 1 thread against 1 process x 2 threads (JAX on CPU).

Trains each model for a short fixed number of steps both ways with ``cnnlab train`` (JAX backend)
and prints the training images per second each run reports in its metrics (training seconds only,
without start-up), plus the host's CPU steal over the whole benchmark (from /proc/stat).

    python benchmarks/distributed.py [--models lenet5,resnet20] [--steps 60] [--batch-size 128]

Needs the MNIST / CIFAR-10 files in the data directory ($CNNLAB_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DATASETS = {"lenet5": ["--dataset", "mnist", "--pad", "2"], "resnet20": ["--dataset", "cifar10_jpg"]}
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot."""
    with open("/proc/stat", encoding="utf-8") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    return values[7], sum(values)


def run(model: str, steps: int, batch: int, processes: int, folder: Path) -> float:
    name = f"{model}-{processes}p"
    args = [
        "--backend",
        "jax",
        "train",
        "--model",
        model,
        *DATASETS[model],
        "--steps",
        str(steps),
        "--batch-size",
        str(batch),
        "--max-train-samples",
        str(steps * batch),
        "--max-eval-samples",
        "256",
        "--runs-dir",
        str(folder),
        "--name",
        name,
        "--quiet",
    ]
    env = dict(os.environ, KERAS_BACKEND="jax")
    if processes > 1:
        env.update(XLA_FLAGS=ONE_THREAD, CNNLAB_THREADS="1")
        command = [sys.executable, "-m", "cnnlab", "launch", "-n", str(processes), "--", *args]
    else:
        env.pop("XLA_FLAGS", None)
        env["CNNLAB_THREADS"] = "2"
        command = [sys.executable, "-m", "cnnlab", *args]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((folder / name / "metrics.json").read_text())
    return steps * batch / metrics["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    options = parser.parse_args()
    steal0, total0 = cpu_times()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in options.models.split(","):
            one = run(model, options.steps, options.batch_size, 1, Path(tmp))
            two = run(model, options.steps, options.batch_size, 2, Path(tmp))
            rows.append((model, one, two))
    steal1, total1 = cpu_times()
    steal = 100 * (steal1 - steal0) / max(total1 - total0, 1)
    print("| model | 1 process x 2 threads (img/s) | 2 processes x 1 thread (img/s) | ratio |")
    print("|---|---|---|---|")
    for model, one, two in rows:
        print(f"| {model} | {one:,.0f} | {two:,.0f} | {two / one:.2f} |")
    print(
        f"\n{options.steps} steps at a global batch of {options.batch_size}, JAX on CPU; "
        f"CPU steal during the benchmark: {steal:.1f}% (shared machine: compare ratios, not absolute figures)"
    )


if __name__ == "__main__":
    main()
