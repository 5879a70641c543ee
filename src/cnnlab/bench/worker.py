"""The cnnlab contender: one training configuration, timed, in its own process.

``python -m cnnlab.bench.worker --model mnist_cnn --backend jax --engine fit --jit on --spe 8``

It measures cnnlab's own training step and the Keras-level ways beside it, so that each runtime
choice is made by measurement (docs/performance.md):

* ``--engine fit``: ``model.fit`` on in-memory arrays, ``--spe`` steps per execution;
* ``--engine train_on_batch``: a Python loop calling ``model.train_on_batch``;
* ``--engine cnnlab``: cnnlab's own training step, :class:`cnnlab.training.engines.KerasEngine`
  (``train_batch`` on float32 batches converted from uint8 per batch, as its training loop does),
  with cnnlab's defaults for everything not given on the command line;
* ``--jit``: ``jit_compile`` for ``compile`` (``auto`` is Keras's default: XLA off on a CPU-only
  TensorFlow, on for JAX, off for torch);
* ``--input uint8``: feed uint8 images and convert to float32 inside the model, per batch
  (4x less memory traffic in the input pipeline), instead of a float32 copy of the data set;
* ``--recipe NAME``: the whole ``cnnlab train --recipe NAME`` on the synthetic images, its own
  loop with everything the recipe has (augmentation, preprocessing, schedule, lookahead, the
  precision ``auto`` resolves to; ``--precision`` overrides it), timed between chunk ends that
  fall on the segment boundaries. This is how a recipe is raced against the same recipe
  written in a plain framework (``--model airbench``).

The model comes from :func:`cnnlab.models.create_model` (logits; loss ``from_logits=True``).
Thread settings come from the environment the harness gives the process (``CNNLAB_THREADS``,
``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS``), applied when :mod:`cnnlab._keras` loads Keras.
"""

from __future__ import annotations

import os
import time

from cnnlab.bench.protocol import LEARNING_RATES, NUM_CLASSES, emit, load_images, parse_args, time_segments
from cnnlab.constants import BACKENDS, PRECISIONS


def _extra_options(parser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    parser.add_argument("--engine", choices=("fit", "train_on_batch", "cnnlab"), default="fit")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--spe", type=int, default=0, help="steps_per_execution (0: 1 for fit / train_on_batch, automatic for cnnlab)"
    )
    parser.add_argument("--input", choices=("float32", "uint8"), default="float32")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="Keras dtype policy (default: cnnlab's 'auto' for --engine cnnlab, else float32)",
    )
    parser.add_argument("--recipe", default=None, help="time a whole `cnnlab train --recipe NAME` (see above)")
    parser.add_argument(
        "--split-batch",
        type=int,
        default=0,
        help="--engine cnnlab: parts per batch computed at once (0: cnnlab's auto)",
    )


def build_model(name: str, keras, uint8_input: bool):
    """cnnlab's model ``name``; with ``uint8_input`` wrapped so it takes uint8 images and scales them."""
    from cnnlab.bench.protocol import INPUT_SHAPES
    from cnnlab.models import create_model

    shape = INPUT_SHAPES[name]
    net = create_model(name, input_shape=shape, num_classes=NUM_CLASSES)
    if not uint8_input:
        return net
    inputs = keras.Input(shape, dtype="uint8")
    scaled = keras.layers.Rescaling(1.0 / 255.0)(inputs)  # casts to float32, then scales: once per batch
    return keras.Model(inputs, net(scaled), name=name)


def cnnlab_engine(args, x_uint8, y):
    """A function training cnnlab's KerasEngine on the first ``count`` images, as its loop does.

    cnnlab's defaults: the precision ``auto`` resolves to, batches converted from uint8 per
    batch, several steps per compiled call (``--spe``, else the loop's automatic choice), and the
    batch split (with its thread layout) ``auto`` resolves to.
    """
    from cnnlab.runtime import start_runtime
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.engines import KerasEngine
    from cnnlab.training.loop import steps_per_call

    config = TrainConfig(
        model=args.model,
        dataset="synthetic",
        batch_size=args.batch_size,
        optimizer="adam",
        lr=LEARNING_RATES[args.model],
        precision=args.precision or "auto",
        split_batch=args.split_batch,
    )
    start_runtime(config)  # the same resolution as a training run's
    args.split_batch = config.split_batch
    engine = KerasEngine(config, x_uint8.shape[1:], NUM_CLASSES, total_steps=10**6)
    args.precision = config.precision
    chunk = {"steps": args.spe or 4}

    def train(count: int) -> None:
        batches = count // args.batch_size
        done = 0
        while done < batches:
            steps = min(chunk["steps"], batches - done)
            rows = slice(done * args.batch_size, (done + steps) * args.batch_size)
            xs = (x_uint8[rows].astype("float32") / 255.0).reshape(steps, args.batch_size, *x_uint8.shape[1:])
            started = time.perf_counter()
            engine.train_steps(xs, y[rows].reshape(steps, args.batch_size))
            if not args.spe:
                chunk["steps"] = steps_per_call((time.perf_counter() - started) / steps)
            done += steps

    return engine.keras_model(), train


def recipe_run(args, x_uint8, y) -> dict:
    """Images/s of ``cnnlab.train(recipe=args.recipe)`` on ``x_uint8``: the segments are timed
    from the loop's own chunk ends, which a callback makes fall on every segment boundary."""
    import math
    import tempfile

    import cnnlab
    from cnnlab.data.types import Dataset, Split
    from cnnlab.training.callbacks import Callback

    steps, warmup, repeats = args.steps, args.warmup_steps, args.repeats
    boundaries = [warmup + k * steps for k in range(repeats + 1)]

    class SegmentClock(Callback):
        step_multiple = math.gcd(warmup, steps) if warmup else steps

        def __init__(self):
            self.times, self.cpu = {}, {}

        def on_chunk_end(self, trainer, logs):
            if trainer.state.step in boundaries:
                self.times[trainer.state.step] = time.perf_counter()
                self.cpu[trainer.state.step] = time.process_time()

    clock = SegmentClock()
    data = Dataset("synthetic", Split(x_uint8, y.astype("int64")), None, None, [str(c) for c in range(NUM_CLASSES)])
    options = {"precision": args.precision} if args.precision else {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as runs_dir:
        run = cnnlab.train(
            recipe=args.recipe,
            dataset=data,
            steps=boundaries[-1],
            batch_size=args.batch_size,
            runs_dir=runs_dir,
            inspect=False,
            test_split=0,  # nothing set aside: every image trains, nothing is scored
            tta="none",
            callbacks=[clock],
            verbose=False,
            **options,
        )
        runtime = run.config["runtime"]  # what "auto" resolved to
    images = steps * args.batch_size
    pairs = list(zip(boundaries, boundaries[1:]))
    return {
        "images_per_s": [images / (clock.times[b] - clock.times[a]) for a, b in pairs],
        "images_per_cpu_s": [images / max(clock.cpu[b] - clock.cpu[a], 1e-9) for a, b in pairs],
        "precision": runtime["precision"],
        "split_batch": runtime["split_batch"],
        "recipe": args.recipe,
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra=_extra_options)
    started = time.perf_counter()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    from cnnlab._keras import keras

    if args.recipe:
        x_uint8, y = load_images(args.model, max(8, args.steps) * args.batch_size, args.data)
        result = recipe_run(args, x_uint8, y)
        emit({"contender": "cnnlab-recipe", "backend": keras.backend.backend(), **result})
        return
    if args.engine != "cnnlab":  # cnnlab's engine sets the policy of its own model
        args.precision = args.precision or "float32"
        keras.mixed_precision.set_global_policy(args.precision)
    images = args.steps * args.batch_size
    x_uint8, y = load_images(args.model, max(images, args.warmup_steps * args.batch_size), args.data)
    if args.engine == "cnnlab":
        model, train = cnnlab_engine(args, x_uint8, y)
    else:
        model, train = keras_engine(args, keras, x_uint8, y)
    train(args.warmup_steps * args.batch_size)
    warmup_s = time.perf_counter() - started
    rates = time_segments(lambda: train(images), images, args.repeats)
    emit(
        {
            "contender": "cnnlab-worker",
            "backend": keras.backend.backend(),
            "engine": args.engine,
            "jit": args.jit,
            "spe": args.spe,
            "input": args.input,
            "precision": args.precision,
            "split_batch": args.split_batch if args.engine == "cnnlab" else None,
            "jit_resolved": str(getattr(model, "jit_compile", None)),
            **rates,
            "warmup_s": warmup_s,
        }
    )


def keras_engine(args, keras, x_uint8, y):
    """A model compiled as the options say, and a function training it on the first ``count`` images."""
    x = x_uint8 if args.input == "uint8" else x_uint8.astype("float32") / 255.0
    model = build_model(args.model, keras, args.input == "uint8")
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATES[args.model]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit],
        steps_per_execution=max(args.spe, 1),
    )

    def train(count: int) -> None:
        if args.engine == "fit":
            model.fit(x[:count], y[:count], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=True)
        else:
            for start in range(0, count, args.batch_size):
                batch = slice(start, start + args.batch_size)
                out = model.train_on_batch(x[batch], y[batch], return_dict=True)
                float(out["loss"]), float(out["accuracy"])  # as a training loop that logs every step would

    return model, train


if __name__ == "__main__":
    main()
