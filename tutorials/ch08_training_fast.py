# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 8: Training fast: one-cycle, label smoothing, test-time augmentation, batch-norm tricks
#
# **Follows:** the reference tutorials' networks (*Classifying Images with Deep Convolutional
# Neural Networks*, by Hsi-Pin Ma: the two-convolution MNIST network) trained the way fast
# training records do it: Leslie Smith's one-cycle schedule ("Super-convergence", 2018), label
# smoothing (Szegedy et al., "Rethinking the Inception architecture", 2016), and airbench's
# test-time flips and batch-norm details (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a
# single GPU", 2024).
#
# cnnlab's fast recipes reach MNIST 99% in about 10 s and Fashion-MNIST 92% in about a minute of
# training on a 2-core CPU (`docs/time-to-accuracy.md`, `docs/performance.md`). This chapter takes
# them apart and measures what each idea adds.
#
# **Running time.** `CNNLAB_TUTORIAL_BUDGET=small`: 5,000 training images per run (about a
# minute in all). The default `full` budget trains the recipes on the full data sets: three
# one-epoch MNIST runs and one three-epoch Fashion-MNIST run, an estimated 3-5 minutes on a
# quiet 2-core CPU (estimate: `fast-mnist` trains in about 10 s, `docs/results.md`; the
# Fashion-MNIST recipe's 3 epochs took 69.9 s in an earlier version and 98.8 s in
# `docs/time-to-accuracy-baselines.md`; plus loading, compiling and evaluation). On a machine
# shared with other jobs, and without bfloat16 units, `fast-mnist` alone took 133 s instead.

# %% [markdown]
# ## Setup

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt

import cnnlab
from cnnlab._keras import keras
from cnnlab.visualization.plots import planned_learning_rate

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch08"
OUT.mkdir(parents=True, exist_ok=True)
LIMIT = {"max_train_samples": 5000, "max_eval_samples": 2000} if SMALL else {}


def show(fig, name):
    """Save a figure under OUT and display it (inline in a notebook; a script only saves it)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure -> {OUT / name}.png")
    plt.show() if "ipykernel" in sys.modules else plt.close(fig)


# %% [markdown]
# ## The recipe
#
# `fast-mnist` is the lecture's `mnist_cnn` at a quarter of its width (16 and 32 filters, a
# 256-unit dense layer) with lighter dropout (0.25), trained for **one** epoch at batch 128 with
# Adam under a one-cycle schedule peaking at 8e-3 and label smoothing 0.1.
# `cnnlab recipes` lists every recipe; the TOML file says why each value was chosen.

# %%
print((Path(cnnlab.__file__).parent / "recipes" / "fast-mnist.toml").read_text())

# %% [markdown]
# ## Ablation on MNIST
#
# The recipe, then the recipe with one idea taken out at a time:
#
# * **constant learning rate**: Keras's default Adam rate, 1e-3, throughout;
# * **no label smoothing**: the targets are one-hot again.

# %%
variants = {
    "fast-mnist recipe": {},
    "constant rate 1e-3": {"schedule": "constant", "lr": 1e-3},
    "no label smoothing": {"label_smoothing": 0.0},
}
runs = {}
for label, options in variants.items():
    runs[label] = cnnlab.train(recipe="fast-mnist", runs_dir=OUT / "runs", verbose=False, **LIMIT, **options)
    m = runs[label].metrics
    print(f"{label:22s} test accuracy {m['accuracy']:.4f}  training {m['seconds']} s")

# %% [markdown]
# ## One-cycle
#
# One-cycle warms the rate up from a small value to a peak, then anneals it to nearly zero. The
# warm-up lets a high peak rate be used safely (the high rate crosses the loss landscape fast);
# the long descent settles into a minimum. In one epoch, a constant rate cannot do both.

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for label in ("fast-mnist recipe", "constant rate 1e-3"):
    steps, rates = planned_learning_rate(runs[label])
    ax.plot(steps, rates, label=label)
ax.set_xlabel("optimizer step")
ax.set_ylabel("learning rate")
ax.legend()
show(fig, "one_cycle")

# %% [markdown]
# ## Label smoothing
#
# With smoothing `e`, the target is `1 - e + e/K` for the true class and `e/K` for the others
# (`K` classes). The network is no longer pushed to infinite logits, which over-confident
# networks need, so it stays better calibrated and generalises a little better. `cnnlab.evaluate`
# reports the test loss as plain cross-entropy whatever the training used, so the runs compare
# directly (a smoothed network's plain loss is higher: it never puts all its probability on one class).

# %%
for label in ("fast-mnist recipe", "no label smoothing"):
    report = cnnlab.evaluate(runs[label].path, write=False)
    print(f"{label:22s} test cross-entropy {report.loss:.4f}  test accuracy {report.accuracy:.4f}")

# %% [markdown]
# ## Test-time augmentation
#
# `fast-fashion-mnist` (a narrow airbench94) trains with random horizontal flips, and at test time
# averages the logits of each image and its mirror (`tta = "flip"` in the recipe; `--tta flip` on
# the command line). Here we train it *without* test-time flips and do them by hand, to see the
# difference on the same network.

# %%
fashion_budget = {"epochs": 1} if SMALL else {}
fashion = cnnlab.train(
    recipe="fast-fashion-mnist", tta="none", runs_dir=OUT / "runs", verbose=False, **LIMIT, **fashion_budget
)
model, test = fashion.model(), fashion.dataset().test
x = fashion.preprocessing(test.x)
plain = keras.ops.convert_to_numpy(model.predict(x, batch_size=500, verbose=0))
mirrored = keras.ops.convert_to_numpy(model.predict(x[:, :, ::-1], batch_size=500, verbose=0))
accuracy_plain = float((plain.argmax(1) == test.y).mean())
accuracy_tta = float(((plain + mirrored).argmax(1) == test.y).mean())
print(f"fast-fashion-mnist: test accuracy {accuracy_plain:.4f} plain, {accuracy_tta:.4f} with the flip averaged in")

# %% [markdown]
# Flips only help where the mirror image is still a plausible member of its class: shirts and
# bags yes, digits no (a mirrored 3 is not a 3), which is why `fast-mnist` does not use them.
#
# ## Batch-norm tricks
#
# Two details of batch normalisation matter for speed:
#
# * **A fused kernel.** Keras 3 computes the batch moments and the normalisation as separate
#   operations; TensorFlow has one fused kernel for the forward pass and one for the backward.
#   cnnlab's `BatchNormalization` (`cnnlab.models.layers`) is Keras's layer that calls the fused
#   kernel in training. Measured here on one 64x32x32x32 batch:

# %%
from cnnlab.models.layers import BatchNormalization  # noqa: E402

if keras.backend.backend() != "tensorflow":
    print("skipped: the fused kernel is TensorFlow's")
else:
    import tensorflow as tf

    batch = tf.random.normal((64, 32, 32, 32))
    repeats = 5 if SMALL else 30
    for name, layer in (
        ("keras.layers.BatchNormalization", keras.layers.BatchNormalization()),
        ("cnnlab BatchNormalization (fused)", BatchNormalization()),
    ):
        layer.build(batch.shape)

        @tf.function
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.reduce_sum(layer(x, training=True))
            return tape.gradient(y, [x, *layer.trainable_variables])

        step(batch)  # trace once
        start = time.perf_counter()
        for _ in range(repeats):
            step(batch)
        print(f"{name:36s} forward + backward {1000 * (time.perf_counter() - start) / repeats:.1f} ms")

# %% [markdown]
# * **Fast biases.** airbench multiplies each batch-norm offset by a constant (8 in cnnlab's
#   `airbench`, `BatchNormalization(offset_scale=8)`), so plain SGD moves the biases 64x faster
#   than the weights, without a second optimizer or parameter groups.
#
# Batch norm is also what lets `fast-fashion-mnist` and `fast-cifar10-90` use SGD rates of 0.6 and
# 1.5: the normalisation keeps activations in range whatever the scale of the weights.
#
# ## Summary
#
# | idea | where | what it buys |
# |---|---|---|
# | one-cycle | `schedule = "one-cycle"` | a high peak rate safely; converges in one epoch |
# | label smoothing | `label_smoothing = 0.1` | calibrated, slightly better generalisation |
# | test-time flips | `tta = "flip"` | accuracy for free at test time, on mirror-symmetric classes (measured above) |
# | fused, fast-bias batch norm | `cnnlab.models.layers.BatchNormalization` | faster steps, high rates |
#
# The measured time to accuracy of every fast recipe, over three seeds and beside plain Keras, is
# in `docs/time-to-accuracy.md` (`cnnlab bench --only tta`).

# %%
print(f"budget {BUDGET}: " + ", ".join(f"{k} {v.metrics['accuracy']:.4f}" for k, v in runs.items()))
