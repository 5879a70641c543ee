"""Proof that the three levels compute the same thing.

cnnlab offers each reference network three times: in NumPy with hand-written backward passes
(:mod:`cnnlab.scratch`, level 1), as raw ops over explicit variables with a hand-written loop
(:mod:`cnnlab.lowlevel`, level 2), and as a Keras model trained by Keras (:mod:`cnnlab.models`,
level 3). :func:`compare_levels` gives all three the same weights and checks that

* they produce the same logits on the same images, and
* ``steps`` steps of plain SGD on the same batches, dropout off, give the same loss at every
  step and the same weights afterwards.

Run it from the shell (the figures in docs/levels.md come from this command)::

    python -m cnnlab.levels lenet5            # 256 MNIST test images, 10 SGD steps
    python -m cnnlab.levels cifar_cnn --json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from cnnlab.errors import CnnlabError, ConfigError, DataError

NETWORKS = ("softmax", "lenet5", "mnist_cnn", "cifar_cnn")


# --------------------------------------------------------------------------- reference images


def reference_batch(name: str, count: int = 256, data_dir=None) -> tuple[np.ndarray, np.ndarray, str]:
    """``count`` real test images prepared as ``name``'s input (float32 in [0, 1]), labels, source.

    MNIST for the MNIST networks (zero-padded to 32x32 for lenet5, as tntrung's tutorial does); CIFAR-10 (the
    JPEG copy) for cifar_cnn, or, if that is not available, MNIST padded to 32x32 and repeated
    over 3 channels, which exercises the same arithmetic.
    """
    from cnnlab.data import load_dataset

    if name not in NETWORKS:
        raise ConfigError(f"model: expected one of {', '.join(NETWORKS)}, got {name!r}")
    if count < 1:
        raise ConfigError(f"images: expected a positive count, got {count}")
    if name == "cifar_cnn":
        try:
            test = load_dataset("cifar10_jpg", data_dir, splits=("test",), download=False).test
            return _unit(test.x[:count]), test.y[:count].astype("int64"), "cifar10_jpg (test)"
        except DataError:
            pass  # fall back to MNIST, below
    test = load_dataset("mnist", data_dir, splits=("test",)).test
    x, y = _unit(test.x[:count]), test.y[:count].astype("int64")
    if name in ("lenet5", "cifar_cnn"):
        x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))  # 28x28 -> 32x32
    if name == "cifar_cnn":
        return np.repeat(x, 3, axis=-1), y, "mnist (test, padded to 32x32, 3 channels)"
    return x, y, "mnist (test)"


def _unit(x: np.ndarray) -> np.ndarray:
    return x.astype("float32") / 255.0


# --------------------------------------------------------------------------- the three levels


def _keras_twin(name: str, input_shape, num_classes: int, seed: int):
    from cnnlab._keras import keras
    from cnnlab.models import create_model

    keras.utils.set_random_seed(seed)
    return create_model(name, input_shape=tuple(input_shape), num_classes=num_classes)


class _KerasLevel:
    """Level 3: the Keras model, trained by Keras (``compile`` + ``train_on_batch``)."""

    def __init__(self, model, lr: float):
        from cnnlab._keras import keras

        for layer in model.layers:  # dropout off: same arithmetic as the twins
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        model.compile(
            optimizer=keras.optimizers.SGD(lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,
        )
        self.model = model

    def logits(self, x):
        from cnnlab._keras import keras

        return np.concatenate(
            [keras.ops.convert_to_numpy(self.model(x[i : i + 256], training=False)) for i in range(0, len(x), 256)]
        )

    def step(self, x, y) -> float:
        return float(self.model.train_on_batch(x, y))

    def get_weights(self):
        return self.model.get_weights()


class _LowLevel:
    """Level 2: raw ops, explicit variables, gradients from the backend, plain SGD."""

    def __init__(self, model, lr: float):
        from cnnlab import lowlevel

        self.lowlevel = lowlevel
        self.net = lowlevel.from_keras(model)
        self.optimizer = lowlevel.SGD(lr)

    def logits(self, x):
        return self.lowlevel.predict_logits(self.net, x)

    def step(self, x, y) -> float:
        return self.lowlevel.train_step(self.net, self.optimizer, x, y, training=False)[0]

    def get_weights(self):
        return self.net.get_weights()


class _ScratchLevel:
    """Level 1: NumPy forward and backward passes, NumPy SGD."""

    def __init__(self, model, lr: float):
        from cnnlab import scratch

        self.net = scratch.from_keras(model)
        self.optimizer = scratch.SGD(lr)

    def logits(self, x):
        return self.net.predict_logits(x)

    def step(self, x, y) -> float:
        # Sequential.train_step always trains with dropout on; with training=False it is off.
        loss, _ = self.net.loss_and_gradients(x, y, training=False)
        self.optimizer.apply(self.net.trainable_params(), self.net.gradients())
        return float(loss)

    def get_weights(self):
        return self.net.get_weights()


# --------------------------------------------------------------------------- comparison


def relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """``||a - b|| / ||b||`` over all arrays taken as one vector."""
    diff = np.sqrt(sum(float(np.sum((np.float64(x) - y) ** 2)) for x, y in zip(a, b)))
    norm = np.sqrt(sum(float(np.sum(np.float64(y) ** 2)) for y in b))
    return float(diff / norm) if norm > 0 else float(diff)


def _norm(arrays: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(float(np.sum(np.float64(a) ** 2)) for a in arrays)))


def compare_levels(
    name: str,
    images,
    labels,
    steps: int = 10,
    lr: float = 0.1,
    seed: int = 0,
    batch_size: int = 32,
    num_classes: int = 10,
) -> dict:
    """Compare the Keras, low-level and scratch versions of ``name`` with the same weights.

    ``images``: float32 NHWC network input; ``labels``: integers. The Keras model is created
    with ``seed``; its weights are copied to the two twins. Then ``steps`` steps of SGD
    (``lr``, no momentum, dropout off) run at every level on the same batches of
    ``batch_size`` images, taken in order and wrapping around.

    Returns a dict: ``logits_max_abs_diff`` (per twin, against Keras), ``losses`` (per level,
    one per step), ``loss_max_abs_diff``, ``weights_rel_diff`` (final weights, against Keras:
    ``||w - w_keras|| / ||w_keras||``), ``update_rel_diff`` (the same for the change of the
    weights over the steps, a stricter test) and ``update_resolution``: the finest
    ``update_rel_diff`` float32 can show, ``steps x eps32 x ||w_keras|| / ||update_keras||``. Each
    step rounds every weight to float32 (a relative error of eps32 = 2**-23), so two levels that
    compute the same step can drift apart by about that much per step; when the weights barely move
    (a network whose loss is flat over the steps), this floor is above 1e-3.
    """
    images = np.asarray(images, dtype="float32")
    labels = np.asarray(labels).astype("int64")
    if images.ndim != 4 or len(images) != len(labels) or len(images) == 0:
        raise ConfigError(
            f"images: expected a non-empty (N, H, W, C) batch with N labels, got {images.shape} and {labels.shape}"
        )
    model = _keras_twin(name, images.shape[1:], num_classes, seed)
    initial = [np.array(w) for w in model.get_weights()]
    levels = {"keras": _KerasLevel(model, lr), "lowlevel": _LowLevel(model, lr), "scratch": _ScratchLevel(model, lr)}

    reference = levels["keras"].logits(images)
    logits_diff = {
        level: float(np.max(np.abs(runner.logits(images) - reference)))
        for level, runner in levels.items()
        if level != "keras"
    }

    losses = {level: [] for level in levels}
    for step in range(steps):
        batch = (step * batch_size + np.arange(batch_size)) % len(images)
        for level, runner in levels.items():
            losses[level].append(runner.step(images[batch], labels[batch]))

    final = {level: [np.array(w) for w in runner.get_weights()] for level, runner in levels.items()}
    keras_update = [w - w0 for w, w0 in zip(final["keras"], initial)]
    twins = [level for level in levels if level != "keras"]
    return {
        "model": name,
        "backend": _backend(),
        "images": int(len(images)),
        "input_shape": list(images.shape[1:]),
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "logits_max_abs_diff": logits_diff,
        "losses": losses,
        "loss_max_abs_diff": {
            level: float(np.max(np.abs(np.subtract(losses[level], losses["keras"])), initial=0.0)) for level in twins
        },
        "weights_rel_diff": {level: relative_difference(final[level], final["keras"]) for level in twins},
        "update_rel_diff": {
            level: relative_difference([w - w0 for w, w0 in zip(final[level], initial)], keras_update)
            for level in twins
        },
        "update_resolution": steps
        * float(np.finfo(np.float32).eps)
        * _norm(final["keras"])
        / max(_norm(keras_update), 1e-30),
    }


def _backend() -> str:
    from cnnlab._keras import keras

    return keras.backend.backend()


# --------------------------------------------------------------------------- command line


def format_report(report: dict, source: str | None = None) -> str:
    """A short, human-readable table of a :func:`compare_levels` report."""
    lines = [
        f"{report['model']} on {report['images']} images{f' of {source}' if source else ''}, "
        f"backend {report['backend']}; {report['steps']} SGD steps, lr {report['lr']}, "
        f"batch {report['batch_size']}, dropout off",
        f"{'level':<10}{'logits max |diff|':>19}{'loss max |diff|':>17}{'weights rel diff':>18}{'update rel diff':>17}",
    ]
    for level in report["logits_max_abs_diff"]:
        lines.append(
            f"{level:<10}{report['logits_max_abs_diff'][level]:>19.2e}{report['loss_max_abs_diff'][level]:>17.2e}"
            f"{report['weights_rel_diff'][level]:>18.2e}{report['update_rel_diff'][level]:>17.2e}"
        )
    first, last = report["losses"]["keras"][:1], report["losses"]["keras"][-1:]
    if first:
        lines.append(f"keras loss: step 1 {first[0]:.5f} -> step {report['steps']} {last[0]:.5f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.levels", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=NETWORKS)
    parser.add_argument("--images", type=int, default=256, help="test images compared (default 256)")
    parser.add_argument("--steps", type=int, default=10, help="SGD steps (default 10)")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    try:
        images, labels, source = reference_batch(args.model, args.images, args.data_dir)
        report = compare_levels(
            args.model, images, labels, steps=args.steps, lr=args.lr, seed=args.seed, batch_size=args.batch_size
        )
    except CnnlabError as error:
        print(f"cnnlab: error: {error}", file=sys.stderr)
        return error.exit_code
    report["source"] = source
    print(json.dumps(report, indent=2) if args.json else format_report(report, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
