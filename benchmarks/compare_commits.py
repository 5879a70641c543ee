"""Training throughput of two commits of cnnlab, side by side in one run (alternating rounds).

For each network, each round runs ``cnnlab train`` for a fixed number of steps on real data
(MNIST for lenet5 and mnist_cnn, CIFAR-10 (JPEG copy) for vgg_bn), once from each commit,
in alternating order, and reads the training time the run itself records (``metrics.json``:
``seconds``, which covers the steps, validation and checkpoints, not the process start-up). The
figures are images per second (steps x batch / seconds); the medians over rounds and their ratio
are printed, with the host's CPU steal over the run.

    python benchmarks/compare_commits.py OLD_REV NEW_REV [--rounds 3] [--steps 300]

Each commit is checked out into a temporary git worktree and run with ``PYTHONPATH`` pointing at
its ``src/``, in the current virtual environment. Needs ``CNNLAB_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NETWORKS = {  # name: (dataset, batch size, extra options)
    "lenet5": ("mnist", 100, ["--pad", "2"]),
    "mnist_cnn": ("mnist", 64, []),
    "vgg_bn": ("cifar10_jpg", 64, []),
}


def cpu_times() -> tuple[int, int]:
    """(total, steal) jiffies from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    return sum(fields), fields[7] if len(fields) > 7 else 0


def train_rate(src: Path, network: str, steps: int, runs: Path, name: str) -> float:
    dataset, batch, extra = NETWORKS[network]
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "--model",
        network,
        "--dataset",
        dataset,
        *extra,
        "--steps",
        str(steps),
        "--batch-size",
        str(batch),
        "--max-eval-samples",
        "500",
        "--runs-dir",
        str(runs),
        "--name",
        name,
        "-q",
    ]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    metrics = json.loads((runs / name / "metrics.json").read_text())
    return steps * batch / metrics["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--network", action="append", choices=sorted(NETWORKS))
    args = parser.parse_args()
    networks = args.network or list(NETWORKS)
    with tempfile.TemporaryDirectory(prefix="cnnlab-compare-") as tmp:
        tmp = Path(tmp)
        trees = {}
        for label, rev in (("old", args.old), ("new", args.new)):
            tree = tmp / label
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True
            )
            trees[label] = tree / "src"
        try:
            total0, steal0 = cpu_times()
            rates = {(n, label): [] for n in networks for label in trees}
            for round_ in range(args.rounds):
                order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
                for network in networks:
                    for label in order:
                        rate = train_rate(
                            trees[label], network, args.steps, tmp / "runs", f"{network}-{label}-{round_}"
                        )
                        rates[network, label].append(rate)
                        print(f"round {round_ + 1} {network:<10} {label}: {rate:8,.0f} images/s", flush=True)
            total1, steal1 = cpu_times()
            print(f"\nhost CPU steal over the run: {100 * (steal1 - steal0) / max(total1 - total0, 1):.1f}%")
            print(f"{'network':<10} {'old (median)':>14} {'new (median)':>14} {'new/old':>8}")
            for network in networks:
                old = statistics.median(rates[network, "old"])
                new = statistics.median(rates[network, "new"])
                print(f"{network:<10} {old:14,.0f} {new:14,.0f} {new / old:8.3f}")
        finally:
            for label in trees:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / label)], capture_output=True
                )


if __name__ == "__main__":
    main()
