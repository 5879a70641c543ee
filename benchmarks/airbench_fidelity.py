"""airbench94's details, each measured alone: test accuracy and training time over seeds.

    python benchmarks/airbench_fidelity.py                            # fast-fashion-mnist, seeds 0 1 2
    python benchmarks/airbench_fidelity.py --recipe fast-cifar10-90   # hours
    python benchmarks/airbench_fidelity.py --variant recipe --variant bn-momentum-0.4 --seeds 0

Keller Jordan's airbench94 ("94% on CIFAR-10 in 3.29 Seconds on a Single GPU") has details that a
first port of it missed or got backwards (docs/performance.md, decision 11). Each variant below is
the recipe with one of them changed, run with ``cnnlab train`` in a fresh process per seed; the
table gives each seed's test accuracy, the mean and spread (max - min), the mean training time
(the run's own ``metrics.json``, without process start-up), and the host's CPU steal over the
whole benchmark. Needs ``CNNLAB_DATA_DIR``.

airbench94 trains for about 10 epochs and starts its lookahead at epoch 4 and stops training the
whitening bias after epoch 3 (both 1-based), so for a recipe of E epochs the variants scale those
to the same share of training: start = round(0.3 E) + 1, bias epochs = max(1, round(0.3 E)).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

AIRBENCH_EPOCHS = 10  # airbench94's budget (9.9 epochs), to which its epoch numbers below belong
#: name: the options added to the recipe ({start} and {bias_epochs}: scaled to the recipe's epochs)
VARIANTS = {
    "recipe": "",
    "bn-momentum-0.4": "--model-option bn_momentum=0.4",
    "alternating-flip": "--augment flip=alternate",
    "lookahead": "--lookahead start={start},every=5",
    "whiten-bias": "--whiten-bias-epochs {bias_epochs}",
    "all-three": "--augment flip=alternate --lookahead start={start},every=5 --whiten-bias-epochs {bias_epochs}",
}


def scaled(options: str, epochs: int) -> str:
    share = round(0.3 * epochs)
    return options.format(start=share + 1, bias_epochs=max(1, share))


def run(recipe: str, variant: str, options: str, seed: int, runs: Path) -> dict:
    name = f"{variant}-seed{seed}"
    command = [sys.executable, "-m", "cnnlab", "train", "--recipe", recipe, "--seed", str(seed)]
    command += ["--runs-dir", str(runs), "--name", name, *shlex.split(options)]
    print("$", shlex.join(["cnnlab", *command[3:]]), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"airbench_fidelity: {name} failed:\n{result.stderr[-2000:]}")
    metrics = json.loads((runs / name / "metrics.json").read_text())
    print(f"  test accuracy {metrics['accuracy']:.4f} in {metrics['seconds']:.1f} s", flush=True)
    return {"accuracy": metrics["accuracy"], "seconds": metrics["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="fast-fashion-mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: all")
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from cnnlab.bench.machine import cpu_times, steal_fraction
    from cnnlab.training.config import resolve_config

    epochs = resolve_config(recipe=args.recipe).epochs
    variants = {name: scaled(VARIANTS[name], epochs) for name in args.variant or VARIANTS}
    start = cpu_times()
    results: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="cnnlab-fidelity-") as temporary:
        runs = args.runs_dir or Path(temporary)
        for seed in args.seeds:  # seeds outermost: a variant's runs are spread over the benchmark
            for name, options in variants.items():
                results[name].append(run(args.recipe, name, options, seed, runs))
    steal = 100.0 * (steal_fraction(start, cpu_times()) or 0.0)

    print(f"\n{args.recipe} ({epochs} epochs), seeds {' '.join(map(str, args.seeds))}; host CPU steal {steal:.1f}%\n")
    print("| variant | options | test accuracy per seed | mean | spread | training s (mean) |")
    print("|---|---|---|---:|---:|---:|")
    for name, rows in results.items():
        accuracies = [row["accuracy"] for row in rows]
        seconds = statistics.mean(row["seconds"] for row in rows)
        per_seed = " / ".join(f"{100 * a:.2f}" for a in accuracies)
        print(
            f"| {name} | `{variants[name] or '(none)'}` | {per_seed} | {100 * statistics.mean(accuracies):.2f} "
            f"| {100 * (max(accuracies) - min(accuracies)):.2f} | {seconds:.1f} |"
        )
    if args.json:
        payload = {"recipe": args.recipe, "variants": variants, "results": results, "steal_percent": steal}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
