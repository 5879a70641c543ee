"""Benchmark: the NumPy-from-scratch LeNet-5 (``cnnlab.scratch``) trained on real MNIST.

MNIST zero-padded to 32x32 and scaled to [0, 1], Adam (Keras's update rule), mini-batches of
100, the whole network in float32 NumPy with hand-written backward passes. Prints, per epoch,
the training loss and accuracy, the test accuracy, the wall time and the training images per
second, then the totals and the first epoch that reached the target test accuracy (98.5%).

Run (from the repository root, real data in $CNNLAB_DATA_DIR):

    nice -n 10 python benchmarks/scratch_lenet5.py --epochs 10 > /tmp/scratch_lenet5.log 2>&1 &

``--until-target`` stops after the first epoch whose test accuracy reaches ``--target``.

``--blas-threads`` caps OpenBLAS's threads (threadpoolctl; default 1, 0 for no cap): the
matrices of LeNet-5 are small, and on a small shared machine several BLAS threads spend their
time waiting on each other (measured: 624 images/s with one thread, 170 with two, under load).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from cnnlab import scratch  # noqa: E402
from cnnlab.data import Preprocessing, load_dataset  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.985, help="test accuracy to report reaching")
    parser.add_argument("--until-target", action="store_true", help="stop after the first epoch reaching --target")
    parser.add_argument("--train-images", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--blas-threads", type=int, default=1, help="cap BLAS threads (threadpoolctl); 0: no cap")
    parser.add_argument("--data-dir", default=None, help="data directory (default: $CNNLAB_DATA_DIR)")
    parser.add_argument("--save", type=Path, default=None, help="write the trained weights to this .npz")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_dataset("mnist", args.data_dir)
    prep = Preprocessing(pad=2, normalize="unit").fit(data.train.x)
    x_train, y_train = data.train.x, data.train.y
    if args.train_images:
        x_train, y_train = x_train[: args.train_images], y_train[: args.train_images]
    x_test, y_test = prep(data.test.x), data.test.y

    net = scratch.build("lenet5", prep.output_shape, data.num_classes, seed=args.seed)
    optimizer = scratch.Adam(args.learning_rate)
    print(net.summary())
    print(
        f"scratch lenet5 | MNIST {len(x_train)} train / {len(x_test)} test | Adam {args.learning_rate} | "
        f"batch {args.batch_size} | epochs {args.epochs} | seed {args.seed} | blas threads "
        f"{args.blas_threads or 'default'} | numpy {np.__version__} | python {platform.python_version()}",
        flush=True,
    )
    reached = None
    cpu_mark = time.process_time()

    def report(record: dict) -> bool:
        """Print the epoch; CPU seconds too, as wall time on a shared machine says little."""
        nonlocal reached, cpu_mark
        record["cpu_seconds"] = time.process_time() - cpu_mark
        _, test_accuracy = net.evaluate(x_test, y_test, batch_size=500)
        cpu_mark = time.process_time()
        record["test_accuracy"] = test_accuracy
        if reached is None and test_accuracy >= args.target:
            reached = record["epoch"]
        print(
            f"epoch {record['epoch']:2d}  loss {record['loss']:.4f}  train acc {record['accuracy']:.4f}  "
            f"test acc {test_accuracy:.4f}  train {record['seconds']:.1f} s wall "
            f"({len(x_train) / record['seconds']:.0f} images/s), {record['cpu_seconds']:.1f} s CPU "
            f"({len(x_train) / record['cpu_seconds']:.0f} images/CPU-s)",
            flush=True,
        )
        return args.until_target and reached is not None

    start = time.perf_counter()
    history = net.fit(
        x_train, y_train, optimizer, epochs=args.epochs, batch_size=args.batch_size,
        shuffle_seed=args.seed, transform=prep, on_epoch_end=report, blas_threads=args.blas_threads,
    )  # fmt: skip
    total = time.perf_counter() - start
    train_seconds = sum(r["seconds"] for r in history)
    cpu_seconds = sum(r["cpu_seconds"] for r in history)
    final = history[-1]["test_accuracy"]
    print(
        f"total {total:.1f} s wall for {len(history)} epochs ({train_seconds:.1f} s wall training, "
        f"{len(history) * len(x_train) / train_seconds:.0f} images/s; {cpu_seconds:.1f} s CPU training, "
        f"{len(history) * len(x_train) / cpu_seconds:.0f} images/CPU-s); final test accuracy {final:.4f}; "
        + (f"reached {args.target:.3f} at epoch {reached}" if reached else f"never reached {args.target:.3f}"),
        flush=True,
    )
    if args.save:
        net.save_weights(args.save)
        print(f"weights written to {args.save}")
    return 0 if final >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
