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
# # Chapter 3: LeNet-5 three ways: NumPy, raw ops, Keras
#
# **Follows:** *Learning basic TensorFlow, Keras by examples of CNN implementation! – Part I*,
# by tntrung (example 2: LeNet-5 in raw TensorFlow ops with Adam, checkpoint save and restore,
# 99.04%), and *Classifying Images with Deep Convolutional Neural Networks*, by Hsi-Pin Ma (the
# CNN built from `conv_layer` / `fc_layer` functions that print every variable).
#
# LeNet-5 (LeCun et al. 1998) is two 5x5 convolutions with max-pooling, then three dense layers.
# cnnlab has it at three levels:
#
# | level | package | gradients come from |
# |---|---|---|
# | 1 scratch | `cnnlab.scratch` | backward passes written in NumPy (chapter 2) |
# | 2 lowlevel | `cnnlab.lowlevel` | the backend's autodiff, called by a hand-written loop |
# | 3 keras | `cnnlab.models` | `model.fit` |
#
# All three keep the same list of weight arrays, in Keras's order, so one set of weights moves
# between them, and we check that they then compute the same logits.
#
# **Running time.** `CNNLAB_TUTORIAL_BUDGET=small`: a few hundred images and steps, well under a
# minute. The default `full` budget trains each level further (NumPy on 10,000 images for one
# epoch, 1,000 raw-op steps, 3 Keras epochs, 1,000 recipe steps): an estimated 4-8 minutes on a
# quiet 2-core CPU, most of it the NumPy and raw-op levels, which run op by op (estimate from
# timings on a shared machine: NumPy 128 images/s, a raw-op step 80-330 ms). The tutorial's own
# 20,000 steps are the `lenet5-mnist` recipe: 13 minutes in `docs/results.md`.

# %% [markdown]
# ## Setup and data
#
# LeNet-5 expects 32x32 images; MNIST's 28x28 digits are zero-padded by 2 pixels on each side, as
# the tutorial's `resize_mnist_32x32` does, and scaled to [0, 1].

# %%
import os
import time
from pathlib import Path

import numpy as np

import cnnlab
from cnnlab import lowlevel, scratch
from cnnlab._keras import keras

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch03"
OUT.mkdir(parents=True, exist_ok=True)

data = cnnlab.load_dataset("mnist", val_split="first:5000")


def prepare(x):
    """uint8 28x28 -> float32 32x32 in [0, 1]."""
    return np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))).astype("float32") / 255


x_train, y_train = prepare(data.train.x), data.train.y
x_test, y_test = prepare(data.test.x), data.test.y
if SMALL:
    x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:1000], y_test[:1000]
print(x_train.shape, x_test.shape)

# %% [markdown]
# ## Level 1: NumPy, every gradient by hand
#
# `scratch.build("lenet5", ...)` stacks the layers of chapter 2: `Conv2D`, `ReLU`, `MaxPool2D`,
# `Flatten`, `Dense`, each with its own `forward` and `backward`. `fit` is a plain mini-batch
# loop: forward, softmax cross-entropy, backward, Adam update.

# %%
net1 = scratch.build("lenet5", (32, 32, 1), 10, seed=0)
for layer in net1.layers:
    print(f"{layer.name:12s} {str(layer.output_shape):14s} {[w.shape for w in layer.weights()]}")

n1 = 300 if SMALL else 10000
start = time.perf_counter()
net1.fit(x_train[:n1], y_train[:n1], scratch.Adam(1e-3), epochs=1, batch_size=100)
seconds1 = time.perf_counter() - start
loss1, accuracy1 = net1.evaluate(x_test, y_test)
print(f"NumPy: one epoch of {n1} images in {seconds1:.1f} s, test accuracy {accuracy1:.4f}")

# %% [markdown]
# ## Level 2: raw ops, explicit variables, a hand-written loop
#
# The network is now a function of raw ops (`keras.ops.conv`, `max_pool`, `matmul`, `relu`) over
# variables we own; the framework differentiates it. With `verbose=True` the variables and
# tensors are printed as they are created, as the lecture's `conv_layer` does. The tutorial
# initialises with a truncated normal of standard deviation 0.1 and biases of 0.1.

# %%
net2 = lowlevel.build("lenet5", (32, 32, 1), 10, init="seed0", verbose=True)
optimizer = keras.optimizers.Adam(1e-3)

# %% [markdown]
# The loop: draw a batch, take one step (`lowlevel.train_step`: loss, gradients from the backend,
# `optimizer.apply`), print progress now and then. Halfway we save a checkpoint (variables and
# Adam's moments in one `.npz`), then restore it into a *fresh* network and optimizer and
# carry on from there, as one does after a crash.

# %%
STEPS = 60 if SMALL else 1000
rng = np.random.default_rng(0)
start = time.perf_counter()
for step in range(1, STEPS + 1):
    batch = rng.integers(0, len(x_train), 100)
    loss, accuracy = lowlevel.train_step(net2, optimizer, x_train[batch], y_train[batch])
    if step % max(1, STEPS // 6) == 0:
        print(f"step {step:5d}  loss {loss:.4f}  batch accuracy {accuracy:.2f}")
    if step == STEPS // 2:
        checkpoint = lowlevel.save_checkpoint(net2, OUT / "lenet5.npz", optimizer, step=step)
        net2 = lowlevel.build("lenet5", (32, 32, 1), 10, init="seed0")
        optimizer = keras.optimizers.Adam(1e-3)
        info = lowlevel.load_checkpoint(net2, checkpoint, optimizer)
        print(f"saved {checkpoint.name} and restored it into a new network ({info})")
seconds2 = time.perf_counter() - start
scores2 = lowlevel.evaluate(net2, x_test, y_test)
print(f"raw ops: {STEPS} steps in {seconds2:.1f} s, test accuracy {scores2['accuracy']:.4f}")

# %% [markdown]
# ## Level 3: Keras layers and `fit`
#
# `cnnlab.create_model("lenet5")` is the same stack as Keras layers (it outputs logits).

# %%
keras.utils.set_random_seed(0)
model = cnnlab.create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
start = time.perf_counter()
model.fit(x_train, y_train, batch_size=100, epochs=1 if SMALL else 3, verbose=2)
seconds3 = time.perf_counter() - start
accuracy3 = model.evaluate(x_test, y_test, verbose=0)[1]
print(f"Keras: {seconds3:.1f} s, test accuracy {accuracy3:.4f}")

# %% [markdown]
# ## The same weights give the same logits at every level
#
# Take the weights trained at level 2, copy them into a Keras model and into a NumPy network,
# and compare the logits of the same test images.

# %%
weights = net2.get_weights()
keras_twin = lowlevel.to_keras(net2)
numpy_twin = scratch.from_keras(keras_twin)
images = x_test[:256]
logits = {
    "lowlevel": lowlevel.predict_logits(net2, images),
    "keras": keras_twin.predict(images, verbose=0),
    "scratch": numpy_twin.predict_logits(images),
}
print("max |logits - keras logits| over 256 images:")
for level, values in logits.items():
    print(f"  {level:9s} {np.abs(values - logits['keras']).max():.2e}")
print("same predicted classes:", all((v.argmax(1) == logits["keras"].argmax(1)).all() for v in logits.values()))

# %% [markdown]
# Level 2 calls the same `keras.ops` primitives as the Keras layers, so its logits are identical;
# NumPy computes the convolutions with its own products, so they differ in the 7th significant
# digit (float32 rounding). `cnnlab.levels.compare_levels` goes further: ten SGD steps at each
# level from the same start, then compares losses and weights. (`python -m cnnlab.levels lenet5`
# prints the same table; `docs/levels.md` discusses it.)

# %%
from cnnlab.levels import compare_levels, format_report  # noqa: E402

report = compare_levels("lenet5", x_test[:256], y_test[:256], steps=10)
print(format_report(report, source="mnist (test)"))

# %% [markdown]
# ## One command
#
# The tutorial's full experiment (Adam 1e-3, batch 100, 20,000 steps, validation every 50 steps)
# is the recipe `lenet5-mnist`: `cnnlab train --recipe lenet5-mnist`, and `--level lowlevel` or
# `--level scratch` trains the same network at the other levels, writing the same kind of run
# folder. Here, a short run of it:

# %%
run = cnnlab.train(
    recipe="lenet5-mnist",
    runs_dir=OUT / "runs",
    verbose=False,
    steps=40 if SMALL else 1000,
    validate_every=20 if SMALL else 250,
    **({"max_train_samples": 2000, "max_eval_samples": 1000} if SMALL else {}),
)
print(f"{run.path}: test accuracy {run.metrics['accuracy']:.4f} after {run.metrics['steps']} steps")

# %% [markdown]
# ## Summary
#
# | level | this chapter's test accuracy |
# |---|---|
# | NumPy | printed above (one epoch on a part of the data) |
# | raw ops + checkpoint | printed above |
# | Keras `fit` | printed above |
# | the tutorial, 20,000 steps | 99.04% (cnnlab's recipe: 99.11%, `docs/results.md`) |
#
# Next, chapter 4: a colour data set, CIFAR-10, and a first look at it before training.

# %%
print(f"numpy {accuracy1:.4f}  raw ops {scores2['accuracy']:.4f}  keras {accuracy3:.4f}  (budget {BUDGET})")
