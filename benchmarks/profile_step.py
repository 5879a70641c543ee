"""Where one training step goes: cnnlab's compiled train step, op by op, on the TensorFlow backend.

    PYTHONPATH=src python benchmarks/profile_step.py     # mnist-cnn, fast-cifar10, fast-cifar10-90
    PYTHONPATH=src python benchmarks/profile_step.py --recipe fast-cifar10 --calls 2

For each recipe (a separate process each, because TensorFlow's thread layout is fixed once it
ran an op):

1. the run's configuration and runtime as ``cnnlab train --recipe NAME`` resolves them
   (:func:`cnnlab.training.config.resolve_config`, :func:`cnnlab.training.loop.start_runtime`:
   precision, batch split, threads), and the engine ``cnnlab train`` steps
   (:func:`cnnlab.training.engines.make_engine`: the same model, optimizer, loss and compiled
   several-steps function);
2. random uint8 images of the dataset's shape, augmented and preprocessed on the host as the
   training loop does (:class:`cnnlab.data.augmentation.Augmentation`,
   :class:`cnnlab.data.preprocessing.Preprocessing`), fed as the loop feeds them: a stack of
   ``steps per call`` batches per compiled call, the steps per call chosen as the loop chooses
   them (``steps_per_execution``, else :func:`cnnlab.training.loop.steps_per_call` of a timed step);
3. one call to trace, ``--calls`` timed calls (the step time and images/s), then ``--profiled``
   calls under TensorFlow's profiler; its ``.xplane.pb`` is read with the protobuf TensorFlow
   ships, and every op the executor ran is put in a category by :func:`op_category`;
4. the table: each category's share of the op time, times the measured time of a step inside the
   compiled call, plus the host's input work per step (augmentation, uint8 to float32, stacking),
   which the loop does between calls.

The op shares are busy time summed over TensorFlow's executor threads: with a split batch two
halves run at once, so the shares are of the work, and the milliseconds are that share of the
measured wall time. The convolutions' FLOPs per step (forward, input and filter gradients, from
the layers' shapes) against their share of the time give their rate, next to the machine's
float32 matmul rate (:func:`cnnlab.bench.machine.matmul_gflops`), measured in the same process
right after the timed calls, so that both see the same load. The host's CPU steal and load
average over the whole run are printed with the tables: on a busy machine the shares are more
reliable than the absolute times.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_RECIPES = ("mnist-cnn", "fast-cifar10", "fast-cifar10-90")
# Image shape and training-set size (after the recipe's held-out split) of the recipes' datasets;
# the size only sets the learning-rate schedule's length.
DATASETS = {
    "mnist": ((28, 28, 1), 10, 50000),
    "fashion_mnist": ((28, 28, 1), 10, 50000),
    "cifar10": ((32, 32, 3), 10, 50000),
    "cifar10_jpg": ((32, 32, 3), 10, 50000),
}
CATEGORIES = (
    "convolution forward",
    "convolution backward",
    "batch norm (fwd+bwd)",
    "matmul / dense",
    "elementwise / activations",
    "pooling",
    "optimizer update",
    "loss / softmax",
    "input (host prep + casts)",
    "other",
)

# ----------------------------------------------------------------------------- op -> category

CONV_FORWARD = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", "Conv3D"}
MATMUL = {"MatMul", "_FusedMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
ELEMENTWISE = {
    "Relu", "ReluGrad", "Relu6", "Relu6Grad", "Elu", "EluGrad", "Selu", "LeakyRelu", "LeakyReluGrad",
    "Gelu", "Tanh", "TanhGrad", "Sigmoid", "SigmoidGrad", "Softplus", "BiasAdd", "BiasAddGrad",
    "AddV2", "Add", "AddN", "Sub", "Mul", "RealDiv", "DivNoNan", "Maximum", "Minimum", "Square",
    "SquaredDifference", "Sqrt", "Rsqrt", "RsqrtGrad", "Neg", "Exp", "Log", "Pow", "Abs", "Sign",
    "Select", "SelectV2", "GreaterEqual", "Greater", "Less", "LessEqual", "Erf", "Erfc",
    "_UnaryOpsComposition", "_FusedBatchMatMul",
    "StatelessRandomUniformV2", "StatelessRandomGetKeyCounter",
}  # fmt: skip
OPTIMIZER_SCOPES = ("adam", "adamw", "sgd", "optimizer", "loss_scale_optimizer", "lookahead", "nesterov")


def _scopes(node: str) -> list[str]:
    """The node name's scopes, lower case, Keras's ``_1`` copies suffixes dropped: ``conv2``, ``adam``."""
    parts = []
    for part in node.lower().split("/"):
        head, _, tail = part.rpartition("_")
        parts.append(head if head and tail.isdigit() else part)
    return parts


def _batch_norm_scope(scope: str) -> bool:
    """``bn``, ``group1_bn``, ``bn_2``, ``batch_normalization``: a batch norm layer's scope."""
    return scope == "bn" or scope.endswith("_bn") or scope.startswith("bn_") or "batch_norm" in scope


def op_category(node: str, op_type: str) -> str:
    """The category (one of :data:`CATEGORIES`) of a TensorFlow op, from its node name and type.

    The type decides where it is unambiguous (convolutions, fused batch norm, pooling, optimizer
    kernels, matmuls); the scope decides for the small ops around them (the optimizer's and the
    loss's arithmetic, a batch norm made of ops, a global pooling's reduction).
    """
    scopes = _scopes(node)
    if op_type in CONV_FORWARD:
        return "convolution forward"
    if op_type.startswith(("Conv2DBackprop", "Conv3DBackprop", "DepthwiseConv2dNativeBackprop")):
        return "convolution backward"
    if "FusedBatchNorm" in op_type or any(_batch_norm_scope(s) for s in scopes):
        return "batch norm (fwd+bwd)"
    if op_type.startswith("ResourceApply") or any(s in OPTIMIZER_SCOPES for s in scopes):
        return "optimizer update"
    if "Softmax" in op_type or any(s.startswith("compile_loss") for s in scopes):
        return "loss / softmax"
    if op_type in MATMUL:
        return "matmul / dense"
    if "Pool" in op_type or any("pool" in s for s in scopes[:-1]):
        return "pooling"
    if op_type == "Cast":
        return "input (host prep + casts)"
    if op_type in ELEMENTWISE:
        return "elementwise / activations"
    return "other"


# ----------------------------------------------------------------------------- the profile's ops


def xplane_ops(logdir: str) -> list[tuple[str, str, float]]:
    """(node name, op type, milliseconds) of every op TensorFlow's executor ran, from the trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    ops = []
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as fh:
            space.ParseFromString(fh.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):  # the executor's threads (not Python's, not Eigen's)
                    continue
                for event in line.events:
                    meta = plane.event_metadata[event.metadata_id]
                    if meta.display_name:  # an op ("node:Type"); the executor's own regions have none
                        ops.append((meta.name.rpartition(":")[0], meta.display_name, event.duration_ps / 1e9))
    return ops


# ----------------------------------------------------------------------------- one recipe (worker)


def conv_flops(model, batch: int) -> dict[str, int]:
    """FLOPs of one training step's convolutions: forward, input gradients (not for the first
    convolution, whose input needs none) and filter gradients (trainable kernels only)."""
    from cnnlab._keras import keras
    from cnnlab.models.layers import walk_layers

    flops = {"forward": 0, "input_grad": 0, "filter_grad": 0}
    first = True
    for layer in walk_layers(model):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            continue
        shape = layer.output.shape
        per_image = 2 * math.prod(int(d) for d in shape[1:3]) * math.prod(layer.kernel.shape)
        flops["forward"] += batch * per_image
        if not first:
            flops["input_grad"] += batch * per_image
        if layer.trainable and layer.kernel.trainable:
            flops["filter_grad"] += batch * per_image
        first = False
    return flops


def profile_recipe(recipe: str, calls: int, profiled: int, batch_size: int = 0) -> dict:
    """Build ``recipe``'s run as ``cnnlab train`` does, time and profile its compiled calls."""
    from cnnlab.training.config import resolve_config
    from cnnlab.training.loop import ADAPT_IMAGES, start_runtime, steps_per_call

    config = resolve_config(recipe=recipe, **({"batch_size": batch_size} if batch_size else {}))
    runtime = start_runtime(config)  # precision, batch split and threads, applied to this process

    import tensorflow as tf

    from cnnlab._keras import keras
    from cnnlab.backend import quiet_native_stderr
    from cnnlab.data.augmentation import Augmentation
    from cnnlab.data.preprocessing import Preprocessing
    from cnnlab.training.engines import make_engine, total_steps

    if config.dataset not in DATASETS:
        sys.exit(f"profile_step: --recipe {recipe}: dataset {config.dataset} is not one of {', '.join(DATASETS)}")
    shape, classes, train_images = DATASETS[config.dataset]
    batch = config.batch_size
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (max(ADAPT_IMAGES, 2 * batch), *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, len(pool))
    augmentation = Augmentation.from_dict(config.augmentation)
    preprocessing = Preprocessing(
        image_size=shape[:2], channels=shape[2], pad=config.pad, normalize=config.normalize, resize=config.resize
    ).fit(pool)
    steps = total_steps(config, math.ceil(train_images / batch))
    with quiet_native_stderr():
        engine = make_engine(config, preprocessing.output_shape, classes, steps)
    if engine.adapts():  # airbench's whitening stem, as the loop does before the first step
        engine.adapt(preprocessing(pool[:ADAPT_IMAGES]))

    batches_made = [0]

    def make_batches(k: int):
        """``k`` batches as the loop makes them (augment, preprocess, stack), and the host seconds."""
        started = time.perf_counter()
        xs, ys = [], []
        for _ in range(k):
            index = batches_made[0]
            batches_made[0] += 1
            rows = np.random.default_rng(index).choice(len(pool), batch, replace=False)
            x = pool[rows]
            if augmentation.enabled:
                x = augmentation(x, np.random.default_rng([config.seed, 0, index]), epoch=0, indices=rows)
            xs.append(preprocessing(x))
            ys.append(labels[rows])
        xs, ys = np.stack(xs), np.stack(ys)
        return xs, ys, time.perf_counter() - started

    def timed_call(k: int):
        xs, ys, host = make_batches(k)
        started = time.perf_counter()
        engine.train_steps(xs, ys)
        return host, time.perf_counter() - started

    timed_call(1)  # traces the compiled several-steps function (one trace serves every chunk size)
    _, one = timed_call(1)
    k = config.steps_per_execution or steps_per_call(one)
    host_times, call_times = [], []
    for _ in range(calls):
        host, call = timed_call(k)
        host_times.append(host)
        call_times.append(call)
    from cnnlab.bench.machine import matmul_gflops

    gflops = matmul_gflops()  # the machine's practical float32 peak, under the load the calls just saw

    profiled_batches = [make_batches(k)[:2] for _ in range(profiled)]
    with tempfile.TemporaryDirectory(prefix="cnnlab-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        for xs, ys in profiled_batches:
            engine.train_steps(xs, ys)
        tf.profiler.experimental.stop()
        ops = xplane_ops(logdir)
    if os.environ.get("CNNLAB_PROFILE_OPS"):  # every op with its category, for checking the mapping
        with open(os.environ["CNNLAB_PROFILE_OPS"], "w") as fh:
            for node, op_type, ms in ops:
                fh.write(f"{ms:.3f}\t{op_category(node, op_type)}\t{op_type}\t{node}\n")

    busy = dict.fromkeys(CATEGORIES, 0.0)
    by_type: dict[str, float] = {}
    other: dict[str, float] = {}
    for node, op_type, ms in ops:
        category = op_category(node, op_type)
        busy[category] += ms
        by_type[op_type] = by_type.get(op_type, 0.0) + ms
        if category == "other":
            other[op_type] = other.get(op_type, 0.0) + ms
    return {
        "recipe": recipe,
        "model": config.model,
        "dataset": config.dataset,
        "batch_size": batch,
        "precision": runtime.precision,
        "split_batch": runtime.split_batch,
        "threads": [runtime.intra_op, runtime.inter_op],
        "optimizer": config.optimizer,
        "steps_per_call": k,
        "host_ms": 1000 * statistics.median(host_times) / k,
        "graph_ms": 1000 * statistics.median(call_times) / k,
        "busy_ms": {c: v / (k * profiled) for c, v in busy.items()},
        "profiled_wall_steps": k * profiled,
        "top_ops": sorted(by_type.items(), key=lambda kv: -kv[1])[:8],
        "other_ops": sorted(other.items(), key=lambda kv: -kv[1])[:5],
        "conv_flops": conv_flops(engine.model, batch),
        "matmul_gflops": gflops,
    }


# ----------------------------------------------------------------------------- report


def table(result: dict) -> str:
    host, graph = result["host_ms"], result["graph_ms"]
    step = host + graph
    busy = result["busy_ms"]
    total_busy = sum(busy.values()) or 1.0
    ms = {c: graph * busy[c] / total_busy for c in CATEGORIES}
    ms["input (host prep + casts)"] += host
    threads = "x".join(str(t) for t in result["threads"])
    lines = [
        f"### {result['model']} ({result['recipe']}: {result['dataset']}, batch {result['batch_size']}, "
        f"{result['precision']}, {result['optimizer']})",
        "",
        f"steps per compiled call {result['steps_per_call']}, split batch {result['split_batch']}, "
        f"threads per op x ops at once {threads}",
        "",
        "| category | ms per step | share |",
        "|---|---:|---:|",
    ]
    for c in CATEGORIES:
        lines.append(f"| {c} | {ms[c]:.1f} | {ms[c] / step:.1%} |")
    lines.append(f"| **step** | **{step:.1f}** | 100% |")
    lines.append("")
    lines.append(
        f"step {step:.1f} ms ({graph:.1f} in the compiled call, {host:.1f} on the host's input), "
        f"{1000 * result['batch_size'] / step:.0f} images/s"
    )
    conv = result["conv_flops"]
    conv_total = sum(conv.values())
    conv_ms = ms["convolution forward"] + ms["convolution backward"]
    line = (
        f"convolutions: {conv_total / 1e9:.2f} GFLOP per step (forward {conv['forward'] / 1e9:.2f}, "
        f"input gradients {conv['input_grad'] / 1e9:.2f}, filter gradients {conv['filter_grad'] / 1e9:.2f})"
    )
    if conv_ms > 0:
        rate = conv_total / conv_ms / 1e6
        line += f" in {conv_ms:.1f} ms: {rate:.1f} GFLOP/s"
        gflops = result["matmul_gflops"]
        line += f", {rate / gflops:.0%} of the float32 matmul rate ({gflops:.1f} GFLOP/s, NumPy 2048 x 2048)"
    lines.append(line)
    tops = ", ".join(f"{name} {ms_ / result['profiled_wall_steps']:.1f}" for name, ms_ in result["top_ops"])
    lines.append(f"heaviest op types (busy ms per step under the profiler, all threads): {tops}")
    others = ", ".join(f"{name} {ms_ / result['profiled_wall_steps']:.1f}" for name, ms_ in result["other_ops"])
    lines.append(f"largest in other: {others}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", action="append", help=f"recipe to profile (repeatable; default {DEFAULT_RECIPES})")
    parser.add_argument("--calls", type=int, default=3, help="timed compiled calls (default 3)")
    parser.add_argument("--profiled", type=int, default=2, help="compiled calls under the profiler (default 2)")
    parser.add_argument("--batch-size", type=int, default=0, help="instead of the recipe's (a quick look)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one recipe in this process: JSON out
    args = parser.parse_args(argv)
    if args.worker:
        result = profile_recipe(args.worker, args.calls, args.profiled, args.batch_size)
        print("RESULT " + json.dumps(result))
        return

    from cnnlab.bench.machine import cpu_model, cpu_times, steal_fraction

    before, load_before, started = cpu_times(), os.getloadavg(), time.perf_counter()
    reports = []
    for recipe in args.recipe or DEFAULT_RECIPES:
        command = [sys.executable, __file__, "--worker", recipe, "--calls", str(args.calls)]
        command += ["--profiled", str(args.profiled), "--batch-size", str(args.batch_size)]
        out = subprocess.run(command, capture_output=True, text=True)
        found = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode or not found:
            sys.exit(f"profile_step: {recipe} failed:\n{out.stderr[-3000:]}")
        reports.append(table(json.loads(found[-1][len("RESULT ") :])))
    steal = steal_fraction(before, cpu_times())
    load_after = os.getloadavg()
    for report in reports:
        print(report + "\n")
    print(
        f"host: {cpu_model()}, {os.cpu_count()} CPUs, CPU steal {'n/a' if steal is None else f'{steal:.1%}'} over the "
        f"{time.perf_counter() - started:.0f} s run, load average {load_before[0]:.2f} at the start, "
        f"{load_after[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
