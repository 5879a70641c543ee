"""Fine-tuning against training from nothing, on few images of classes the pretrained model never saw.

    python benchmarks/finetune.py                      # needs CNNLAB_DATA_DIR with cifar10-jpg/
    python benchmarks/finetune.py --seeds 0 1 2 --work DIR --keep   # keep the runs; reuse those with the same options

What it does, with ``cnnlab train`` in a fresh process for every run:

1. extracts CIFAR-10 (JPEG copy) into ``--work`` (a temporary folder unless given; never the
   checkout) and makes two class-folder datasets from it with hard links: **A**, the whole training
   and test sets of the first five classes (airplane, automobile, bird, cat, deer), and for each
   seed **B**, ``--per-class`` (100) training images of each of the other five classes (dog, frog,
   horse, ship, truck), drawn with that seed, with their whole test set (5,000 images);
2. pretrains on A once (``--pretrain-args``: the ``fast-cifar10`` recipe for 16 epochs, fastnet at
   width 32, twice the recipe's; ``--model-option`` sets the network of every run);
3. for each seed, trains on B eight ways with the same options and the same seed:
   ``scratch`` (fresh weights), ``finetune`` (``--init-from`` the pretrained run: every layer but
   the head, which was trained on other classes, then all of them train), ``finetune-frozen`` (``--freeze backbone`` until epoch
   ``--unfreeze-at``, then the backbone trains at a tenth of the rate), ``finetune-low-lr``
   (``--init-from`` with the peak rate ``--low-lr``, by default a fifth of the recipe's) and ``finetune-probe-first`` (the
   backbone frozen for 3 epochs while the fresh head learns, then everything at the full rate) and
   ``finetune-discriminative`` (everything trains from the first step, the backbone at a quarter
   of the head's rate), and ``finetune-l2sp`` and ``finetune-discriminative-l2sp`` (those two with
   the pretrained weights decaying toward their pretrained values, ``--l2-sp``);
4. prints each run's test accuracy on B's 5,000 test images, the mean and spread per arm, the
   difference fine-tuning makes, and the host's CPU steal over the whole benchmark.

Both datasets' classes are disjoint, so nothing of B's classes is seen in pretraining. The head has
five outputs both times, but ``--init-from`` leaves it fresh: the pretrained run records that it
was trained on other classes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
FINETUNE_CLASSES = ("dog", "frog", "horse", "ship", "truck")
#: The options of every run on B; the arms differ only by the options in ARMS.
FINETUNE_ARGS = "--recipe fast-cifar10 --epochs 30 --batch-size 50 --val-split 0.1"
ARMS = {
    "scratch": "",
    "finetune": "--init-from {pretrained}",
    "finetune-frozen": "--init-from {pretrained} --freeze backbone --unfreeze-at 6 --backbone-lr-mult 0.1",
    "finetune-low-lr": "--init-from {pretrained} --lr {low_lr}",
    # Linear probing then fine-tuning (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
    # Features and Underperform Out-of-Distribution"): the fresh head learns on frozen features
    # first, so its random start does not send large gradients into the backbone.
    "finetune-probe-first": "--init-from {pretrained} --freeze backbone --unfreeze-at 4",
    # Discriminative rates (Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text
    # Classification"): the backbone trains from the first step, at a quarter of the fresh head's rate.
    "finetune-discriminative": "--init-from {pretrained} --freeze backbone --unfreeze-at 1 --backbone-lr-mult 0.25",
    # L2-SP (Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with
    # Convolutional Networks"): the loaded weights decay toward their pretrained values, not toward zero.
    "finetune-l2sp": "--init-from {pretrained} --l2-sp {l2_sp}",
    "finetune-discriminative-l2sp": "--init-from {pretrained} --freeze backbone --unfreeze-at 1 "
    "--backbone-lr-mult 0.25 --l2-sp {l2_sp}",
}


def tag(*options: str) -> str:
    """A short name for a set of options: with ``--keep``, a run is reused only by a later benchmark
    that would have started it with the same options (another ``--pretrain-args`` pretrains anew)."""
    return hashlib.sha1("\n".join(options).encode()).hexdigest()[:8]


def cpu_times() -> tuple[int, int]:
    """(total, steal) jiffies from /proc/stat's cpu line."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:8]), fields[7]


def extract(data_dir: Path, work: Path) -> Path:
    root = work / "cifar10-jpg"
    if (root / "train").is_dir():
        return root
    archive = data_dir / "cifar10-jpg" / "cifar10-jpg.tar.gz"
    if not archive.is_file():
        sys.exit(f"finetune: {archive}: not found (set CNNLAB_DATA_DIR to the folder holding cifar10-jpg/)")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return root


def link_split(source: Path, target: Path, files_per_class: dict[str, list[Path]]) -> None:
    for name, files in files_per_class.items():
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        for file in files:
            try:
                os.link(file, folder / file.name)
            except OSError:  # another file system
                shutil.copy2(file, folder / file.name)


def make_dataset(root: Path, target: Path, classes, per_class: int | None, seed: int) -> Path:
    if target.is_dir():
        return target
    rng = random.Random(seed)
    train = {}
    for name in classes:
        files = sorted((root / "train" / name).iterdir())
        train[name] = files if per_class is None else sorted(rng.sample(files, per_class))
    test = {name: sorted((root / "test" / name).iterdir()) for name in classes}
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    link_split(root, partial / "train", train)
    link_split(root, partial / "test", test)
    partial.rename(target)
    return target


def train(dataset: Path, runs: Path, name: str, args: str, seed: int) -> dict:
    folder = runs / name
    metrics_file = folder / "metrics.json"
    if not metrics_file.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        command = [
            sys.executable,
            "-m",
            "cnnlab",
            "train",
            "--dataset",
            f"folder:{dataset}",
            "--runs-dir",
            str(runs),
            "--name",
            name,
            "--seed",
            str(seed),
            *shlex.split(args),
        ]
        print("$", shlex.join(command[2:]), flush=True)
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"finetune: run {name} failed:\n{result.stderr[-2000:]}")
        print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    metrics = json.loads(metrics_file.read_text())
    return {"test_accuracy": metrics["accuracy"], "train_seconds": metrics["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("CNNLAB_DATA_DIR", "data")))
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep --work (and reuse finished runs next time)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=100, help="training images per class of B")
    parser.add_argument("--pretrain-args", default="--recipe fast-cifar10 --epochs 16")
    parser.add_argument("--finetune-args", default=FINETUNE_ARGS)
    parser.add_argument(
        "--model-option",
        action="append",
        metavar="KEY=VALUE",
        help="a model option for pretraining and every run on B (default: width=32, twice fast-cifar10's fastnet)",
    )
    parser.add_argument(
        "--low-lr",
        type=float,
        default=0.04,
        help="the finetune-low-lr arm's peak rate (default: a fifth of fast-cifar10's)",
    )
    parser.add_argument(
        "--l2-sp",
        type=float,
        default=0.05,
        help="the *-l2sp arms' pull toward the pretrained weights (cnnlab train --l2-sp)",
    )
    parser.add_argument("--arm", action="append", choices=sorted(ARMS), help="arms to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    # one network for every run: the pretrained weights must fit it, and the arms differ only by ARMS
    for option in args.model_option or ["width=32"]:
        args.pretrain_args += f" --model-option {shlex.quote(option)}"
        args.finetune_args += f" --model-option {shlex.quote(option)}"

    work = args.work or Path(tempfile.mkdtemp(prefix="cnnlab-finetune-"))
    work.mkdir(parents=True, exist_ok=True)
    total0, steal0 = cpu_times()
    load0 = os.getloadavg()[0]
    try:
        root = extract(args.data_dir, work)
        runs = work / "runs"
        pretrain_set = make_dataset(root, work / "A", PRETRAIN_CLASSES, None, 0)
        pretrain_name = f"pretrain-{tag(args.pretrain_args)}"
        pretrained = train(pretrain_set, runs, pretrain_name, args.pretrain_args, 0)
        print(f"pretrained on A ({', '.join(PRETRAIN_CLASSES)}): test accuracy {pretrained['test_accuracy']:.4f}")
        arms = args.arm or list(ARMS)
        results: dict[str, list[float]] = {arm: [] for arm in arms}
        for seed in args.seeds:
            subset = make_dataset(root, work / f"B-{args.per_class}-seed{seed}", FINETUNE_CLASSES, args.per_class, seed)
            for arm in arms:
                extra = ARMS[arm].format(pretrained=runs / pretrain_name, low_lr=args.low_lr, l2_sp=args.l2_sp)
                options = f"{args.finetune_args} {extra}"
                name = f"{arm}-seed{seed}-{tag(str(args.per_class), options)}"
                result = train(subset, runs, name, options, seed)
                results[arm].append(result["test_accuracy"])
                print(f"  seed {seed} {arm}: test accuracy {result['test_accuracy']:.4f}", flush=True)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total1, steal1 = cpu_times()
    steal = 100.0 * (steal1 - steal0) / max(total1 - total0, 1)

    print()
    print(f"B: {args.per_class} training images per class x {len(FINETUNE_CLASSES)} classes; test: 5,000 images")
    print(f"options of every run on B: {args.finetune_args}")
    print("| arm | test accuracy per seed | mean | min-max |")
    print("|---|---|---|---|")
    for arm, values in results.items():
        per_seed = ", ".join(f"{100 * v:.2f}%" for v in values)
        mean = 100 * sum(values) / len(values)
        print(f"| {arm} | {per_seed} | {mean:.2f}% | {100 * min(values):.2f}-{100 * max(values):.2f}% |")
    if "scratch" in results:
        base = sum(results["scratch"]) / len(results["scratch"])
        for arm, values in results.items():
            if arm != "scratch":
                gain = 100 * (sum(values) / len(values) - base)
                print(f"{arm} vs scratch: {gain:+.2f} points (mean of {len(values)} seeds)")
    print(f"host CPU steal over the benchmark: {steal:.1f}%; load average at the start {load0:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "pretrained": pretrained, "steal_percent": steal}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
