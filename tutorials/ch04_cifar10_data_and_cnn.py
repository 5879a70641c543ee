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
# # Chapter 4: Looking at CIFAR-10, and the small CNN that learns it
#
# **Follows:** *Classification Using Keras and Tensorflow* (ver. 0.1.0, 2018-07-01), by Richard
# Kuo: load CIFAR-10, look at it (shapes, sample values, a grid of images), normalise it, and
# train a three-layer CNN with RMSProp and dropout (64.05% test accuracy in the write-up).
#
# Before training anything on a new data set, look at it: how many images, what shape, which
# classes and how many of each, what the pixels look like. Then train, and read the learning
# curves: they say whether more epochs, more regularisation or a bigger network would help.
#
# The data is the JPEG copy of CIFAR-10 in the data directory (`cifar10_jpg`; JPEG compression
# changes pixel values slightly, so figures are quoted as "CIFAR-10 (JPEG copy)").
#
# **Running time.** `CNNLAB_TUTORIAL_BUDGET=small` trains one epoch on 2,000 images (about half a
# minute, plus about 20 s to decode the JPEG files the first time; later runs read a cache). The
# default `full` budget trains the write-up's 50 epochs: about 45-50 minutes on a quiet 2-core
# CPU (an estimate: the `cifar-cnn` recipe's 50 epochs of 50,000 images took 50.0 min,
# `docs/results.md`; here 45,000 images per epoch). On a machine shared with other jobs it
# measured 178 images/s, which would make it nearly 4 hours.

# %% [markdown]
# ## Setup

# %%
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnlab

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch04"
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name):
    """Save a figure under OUT and display it (inline in a notebook; a script only saves it)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure -> {OUT / name}.png")
    plt.show() if "ipykernel" in sys.modules else plt.close(fig)


# %% [markdown]
# ## Shapes, sizes, sample values

# %%
data = cnnlab.load_dataset("cifar10_jpg")
print(data)
print("classes:", data.class_names)
print("train images", data.train.x.shape, data.train.x.dtype, " labels", data.train.y.shape, data.train.y.dtype)
print("first image, top-left 2x2 pixels (R, G, B):\n", data.train.x[0, :2, :2])
print("its label:", data.train.y[0], "=", data.class_names[data.train.y[0]])

# %% [markdown]
# ## A grid of samples
#
# The write-up draws a 3x3 grid with `plt.subplot`; here is one example of every class.
# (From the shell: `cnnlab show cifar10_jpg --grid 4x4 --out cifar.png`.)

# %%
fig, axes = plt.subplots(2, 5, figsize=(9, 4))
for label, ax in enumerate(axes.flat):
    index = np.flatnonzero(data.train.y == label)[0]
    ax.imshow(data.train.x[index])
    ax.set_title(data.class_names[label], fontsize=9)
    ax.axis("off")
show(fig, "samples")

# %% [markdown]
# ## Class balance
#
# A classifier's accuracy means little without the class frequencies: with one class at 90%,
# 90% accuracy is free. CIFAR-10 is balanced: 5,000 training and 1,000 test images per class.

# %%
train_counts = np.bincount(data.train.y, minlength=data.num_classes)
test_counts = np.bincount(data.test.y, minlength=data.num_classes)
fig, ax = plt.subplots(figsize=(9, 3))
positions = np.arange(data.num_classes)
ax.bar(positions - 0.2, train_counts, width=0.4, label="train")
ax.bar(positions + 0.2, test_counts, width=0.4, label="test")
ax.set_xticks(positions, data.class_names, rotation=30)
ax.set_ylabel("images")
ax.legend()
show(fig, "class_balance")
print(dict(zip(data.class_names, train_counts.tolist())))

# %% [markdown]
# ## Pixel statistics
#
# The write-up divides by 255 ("it would be easier to work from 0-1"). The per-channel means and
# standard deviations are what `--normalize standardize` would subtract and divide by instead.

# %%
pixels = data.train.x[:10000].reshape(-1, 3) / 255
print("mean per channel (R, G, B):", pixels.mean(axis=0).round(3))
print("std per channel  (R, G, B):", pixels.std(axis=0).round(3))

# %% [markdown]
# ## The network
#
# Three 3x3 convolutions (32, 64, 128 filters, no biases) each followed by ReLU, 2x2 max-pooling
# and dropout (keep 0.8); a dense layer of 625 units with dropout 0.5; weights drawn from a normal
# distribution of standard deviation 0.01. In cnnlab it is `cifar_cnn`:

# %%
model = cnnlab.create_model("cifar_cnn", input_shape=(32, 32, 3), num_classes=10)
model.summary()

# %% [markdown]
# ## Training
#
# The `cifar-cnn` recipe holds the write-up's settings (RMSProp 0.001 with decay 0.9, batch 128,
# 50 epochs). The write-up checks the test set after every epoch and keeps no validation set; to
# draw learning curves without peeking at the test set, we keep 5,000 training images aside
# (`val_split=5000`), so this run trains on 45,000 images instead of 50,000.

# %%
budget = {"epochs": 1, "max_train_samples": 2000, "max_eval_samples": 1000} if SMALL else {}
run = cnnlab.train(recipe="cifar-cnn", val_split=5000, runs_dir=OUT / "runs", **budget)

# %% [markdown]
# ## Learning curves
#
# (At the small budget the network has barely started: about 10% accuracy is chance for ten
# classes, and this network, with its 0.01-scale initial weights, needs a few epochs to move.)
#
# Training accuracy above validation accuracy, and the gap growing, means over-fitting: the
# network learns the training images rather than the classes. Validation loss rising while
# training loss falls is the moment to stop (chapter 5 automates that with early stopping).

# %%
history = run.history
epochs = [row["epoch"] for row in history]
fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
    top.plot(epochs, [row[key] for row in history], marker="o", label=label)
for key, label in (("loss", "train"), ("val_loss", "validation")):
    bottom.plot(epochs, [row[key] for row in history], marker="o", label=label)
top.set_ylabel("accuracy")
bottom.set_ylabel("cross-entropy")
bottom.set_xlabel("epoch")
top.legend()
show(fig, "learning_curves")

# %% [markdown]
# ## Evaluation
#
# `cnnlab.evaluate` reloads the run's model with its exact preprocessing, and reports accuracy,
# per-class precision and recall and the confusion matrix (rows: true class). Cats and dogs are
# the classic confusion. (From the shell: `cnnlab evaluate RUN_FOLDER`.)

# %%
report = cnnlab.evaluate(run.path)
print(report.summary())

# %% [markdown]
# ## Summary
#
# The write-up reaches 64.05% after 50 epochs; cnnlab's `cifar-cnn` recipe on all 50,000 images
# reached 75.68% (seed 0, `docs/results.md`). Its learning curves show the limit of this network:
# without batch norm or augmentation, the gap between training and validation opens early.
# Chapter 5 adds both.

# %%
print(f"test accuracy {report.accuracy:.4f} after {run.metrics['epochs']} epochs (budget {BUDGET})")
