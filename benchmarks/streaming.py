"""Streaming input for folders that do not fit in memory: images/s delivered and peak RSS.

    python benchmarks/streaming.py                       # 100,000 JPEGs at 160x160, generated in a temp folder
    python benchmarks/streaming.py --images 20000        # fewer, when generating 100,000 takes too long
    python benchmarks/streaming.py --folder DIR --keep   # reuse (or keep) a generated folder

What it does:

1. generates ``--images`` photo-like JPEGs (``--source-size`` pixels: 64 base pictures of smooth
   colour gradients and blurred ellipses, each file a shifted, mirrored, colour-scaled copy with
   fresh noise; quality 90) in 10 class folders of a temporary folder (never in the checkout),
   with one process per core;
2. in a fresh process each, streams the whole folder once through
   :class:`cnnlab.data.streaming.ImageStream` (Pillow in a thread pool) and through a tf.data
   pipeline (``tf.io.decode_jpeg`` + ``tf.image.resize``, ``num_parallel_calls=AUTOTUNE``,
   deterministic order) at ``--size`` (64), batch ``--batch``, with ``--workers`` threads, and
   reports images/s and the process's peak resident memory (``ru_maxrss``);
3. in a fresh process, times ``--steps`` training steps of resnet20 at ``--size`` with cnnlab's
   Keras engine (after two untimed warm-up steps) on random images: the rate the pipeline must feed;
4. prints the ratios against the targets (pipeline >= 2x the training rate; peak RSS <= 2.5 GB) and
   the CPU steal over the whole run (other virtual machines taking this host's CPUs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = 10


def _photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like RGB image: a smooth gradient, a few soft ellipses, mild sensor noise."""
    from PIL import Image, ImageDraw, ImageFilter

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0, 255, 3)[None, None, :] * (1 - yy[..., None]) + rng.uniform(0, 255, 3) * yy[..., None]
    base = base * (0.7 + 0.3 * xx[..., None])
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 6)):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        draw.ellipse((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.0))))
    array = np.asarray(image, np.float32) + rng.normal(0, 4, (size, size, 3))
    return array.clip(0, 255).astype(np.uint8)


_BASES: list = []
_NOISE = None


def _variant(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cheap new photo: one of 64 base photos (drawn once per process: 20 ms each), shifted,
    maybe mirrored, colour-scaled and with fresh noise, so that no two files are alike."""
    global _NOISE
    if not _BASES:
        _BASES.extend(_photo(np.random.default_rng([7, b]), size) for b in range(64))
        _NOISE = np.random.default_rng(8).integers(-6, 7, (2 * size, 2 * size, 3), dtype=np.int16)
    image = np.roll(_BASES[rng.integers(len(_BASES))], tuple(rng.integers(0, size, 2)), axis=(0, 1))
    if rng.random() < 0.5:
        image = image[:, ::-1]
    gain = (rng.uniform(0.7, 1.1, 3) * 256).astype(np.int16)
    dy, dx = rng.integers(0, size, 2)
    noisy = (image.astype(np.int16) * gain >> 8) + _NOISE[dy : dy + size, dx : dx + size]
    return noisy.clip(0, 255).astype(np.uint8)


def _generate_part(args) -> int:
    from PIL import Image

    folder, start, stop, size = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        path = Path(folder) / f"class{i % CLASSES}" / f"{i:06d}.jpg"
        Image.fromarray(_variant(rng, size)).save(path, quality=90)
    return stop - start


def generate(folder: Path, count: int, size: int, processes: int) -> float:
    """Write ``count`` JPEGs into ``folder/class*/``; returns the seconds it took."""
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    present = sum(1 for _ in folder.glob("class*/*.jpg"))
    if present >= count:
        return 0.0
    start = time.perf_counter()
    chunks = [(str(folder), s, min(s + 1000, count), size) for s in range(0, count, 1000)]
    with multiprocessing.Pool(processes) as pool:
        for _ in pool.imap_unordered(_generate_part, chunks):
            pass
    return time.perf_counter() - start


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def child_stream(folder: str, size: int, batch: int, workers: int, limit: int) -> dict:
    from cnnlab.data.streaming import ImageStream, list_image_files

    files, labels, _ = list_image_files(folder)
    files, labels = files[:limit] if limit else files, labels[:limit] if limit else labels
    stream = ImageStream(files, labels, (size, size), 3, batch_size=batch, shuffle=True, seed=0, workers=workers)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    images = 0
    checksum = 0
    for x, _ in stream.epoch(0):
        images += len(x)
        checksum += int(x[:, 0, 0, 0].sum())
    seconds = time.perf_counter() - start
    return {
        "pipeline": "thread pool + Pillow",
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss_before,
        "checksum": checksum,
    }


def child_tfdata(folder: str, size: int, batch: int, workers: int, limit: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from cnnlab.data.streaming import list_image_files

    tf.config.threading.set_inter_op_parallelism_threads(workers)
    tf.config.threading.set_intra_op_parallelism_threads(workers)
    files, labels, _ = list_image_files(folder)
    files, labels = files[:limit] if limit else files, labels[:limit] if limit else labels
    order = np.random.default_rng([0, 0]).permutation(len(files))

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    data = tf.data.Dataset.from_tensor_slices((np.array(files)[order], labels[order]))
    data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch)
    data = data.prefetch(2)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    images = 0
    for x, _ in data.as_numpy_iterator():
        images += len(x)
    seconds = time.perf_counter() - start
    return {
        "pipeline": "tf.data",
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def child_train(size: int, batch: int, steps: int) -> dict:
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.engines import KerasEngine

    config = TrainConfig(model="resnet20", dataset="streaming-benchmark", batch_size=batch, lr=1e-3, steps=steps + 2)
    engine = KerasEngine(config, (size, size, 3), CLASSES, steps + 2)
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, CLASSES, batch)
    for _ in range(2):  # graph tracing and first-touch allocations
        engine.train_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        engine.train_batch(x, y)
    seconds = time.perf_counter() - start
    return {
        "model": "resnet20",
        "steps": steps,
        "batch": batch,
        "seconds": seconds,
        "images_per_s": steps * batch / seconds,
        "precision": engine.precision,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_child(kind: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--folder",
        str(args.folder),
        "--size",
        str(args.size),
        "--batch",
        str(args.batch),
        "--workers",
        str(args.workers),
        "--steps",
        str(args.steps),
        "--limit",
        str(args.stream_limit if kind == "stream" else args.limit),
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--source-size", type=int, default=160, help="generated JPEGs are this many pixels a side")
    parser.add_argument("--size", type=int, default=64, help="the size the pipeline resizes to and resnet20 trains at")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: the CPU cores)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps of resnet20")
    parser.add_argument("--limit", type=int, default=20_000, help="images the tf.data comparison streams (0: all)")
    parser.add_argument("--stream-limit", type=int, default=0, help="images the thread-pool pipeline streams (0: all)")
    parser.add_argument("--folder", type=Path, default=None, help="where to generate (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument("--skip-tfdata", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from cnnlab.data.streaming import default_workers

    args.workers = args.workers or default_workers()
    if args.child:
        runner = {
            "stream": lambda: child_stream(str(args.folder), args.size, args.batch, args.workers, args.limit),
            "tfdata": lambda: child_tfdata(str(args.folder), args.size, args.batch, args.workers, args.limit),
            "train": lambda: child_train(args.size, args.batch, args.steps),
        }[args.child]
        print(json.dumps(runner()))
        return

    from cnnlab.bench.machine import cpu_times, steal_fraction

    temporary = args.folder is None
    args.folder = Path(tempfile.mkdtemp(prefix="cnnlab-streaming-")) if temporary else args.folder
    before = cpu_times()
    try:
        seconds = generate(args.folder, args.images, args.source_size, default_workers())
        count = sum(1 for _ in args.folder.glob("class*/*.jpg"))
        print(
            f"folder: {count} JPEGs at {args.source_size}x{args.source_size}"
            + (f" (generated in {seconds:.0f} s)" if seconds else " (already there)")
        )
        results = {"stream": _run_child("stream", args)}
        if not args.skip_tfdata:
            results["tfdata"] = _run_child("tfdata", args)
        results["train"] = _run_child("train", args)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(args.folder, ignore_errors=True)
    steal = steal_fraction(before, cpu_times())
    train = results["train"]["images_per_s"]
    for key in ("stream", "tfdata"):
        if key in results:
            r = results[key]
            print(
                f"{r['pipeline']:>22}: {r['images']} images at {args.size}x{args.size} in {r['seconds']:.1f} s: "
                f"{r['images_per_s']:.0f} images/s ({r['images_per_s'] / train:.1f}x training), "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )
    print(
        f"{'resnet20 training':>22}: {train:.0f} images/s at {args.size}x{args.size}, batch {args.batch} "
        f"({results['train']['precision']}), peak RSS {results['train']['peak_rss_mb']:.0f} MB"
    )
    stream = results["stream"]
    print(
        f"targets: pipeline >= 2x training: {stream['images_per_s'] / train:.1f}x "
        f"({'met' if stream['images_per_s'] >= 2 * train else 'NOT met'}); peak RSS <= 2.5 GB: "
        f"{stream['peak_rss_mb'] / 1024:.2f} GB ({'met' if stream['peak_rss_mb'] <= 2560 else 'NOT met'})"
    )
    print(f"workers {args.workers}, CPU steal over the run: " + ("unknown" if steal is None else f"{100 * steal:.1f}%"))
    print(json.dumps({**results, "steal": steal, "workers": args.workers}))


if __name__ == "__main__":
    main()
