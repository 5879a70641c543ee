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
# # Chapter 5: A VGG-style network with batch norm, augmentation and early stopping
#
# **Follows:** *Convolutional Neural Network with Keras*, by Jake Tae (jaketae.github.io; notes on
# François Chollet's *Deep Learning with Python*): VGG-style blocks with batch normalisation and
# dropout, `ImageDataGenerator` augmentation (shifts, zoom, horizontal flips), `EarlyStopping` and
# learning curves on CIFAR-10 (78.77% test accuracy in the post).
#
# Chapter 4's network over-fits early. Three tools push further, and this chapter shows what each
# does by taking it away (an *ablation*) on the same budget:
#
# * **batch normalisation** standardises each layer's activations over the batch, which lets a
#   deeper network train quickly from the start;
# * **data augmentation** shows the network a slightly different image each epoch (shifted,
#   zoomed, mirrored), so it cannot memorise pixels;
# * **early stopping** watches the validation loss and stops when it no longer improves.
#
# **Running time.** `CNNLAB_TUTORIAL_BUDGET=small`: each variant trains one epoch on 1,000 images
# (under a minute in all; the numbers mean nothing at that size). The default `full` budget
# trains each of the three variants on 10,000 images for up to 15 epochs: an estimated 15-20
# minutes on a quiet 2-core CPU (estimate: `vgg_bn` trained at 118 images/s in float32 on a
# machine shared with other jobs, where `cifar_cnn` ran 4.7x slower than its recorded time; about
# an hour at that shared rate). The post's full experiment is the `vgg-bn-cifar10` recipe:
# 80.79% after 39 epochs, 2.4 h (`docs/results.md`).

# %% [markdown]
# ## Setup

# %%
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnlab
from cnnlab._keras import keras
from cnnlab.data.augmentation import Augmentation
from cnnlab.models import list_models, register_model

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch05"
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name):
    """Save a figure under OUT and display it (inline in a notebook; a script only saves it)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure -> {OUT / name}.png")
    plt.show() if "ipykernel" in sys.modules else plt.close(fig)


# %% [markdown]
# ## The network
#
# Three blocks of two 3x3 convolutions (32, 64, 128 filters), each followed by ReLU and batch
# norm, then 2x2 max-pooling and dropout (0.2, 0.3, 0.4); a dense layer of 128 units, dropout
# 0.5, and the classifier. In cnnlab it is `vgg_bn`, 552,362 parameters as in the post.

# %%
cnnlab.create_model("vgg_bn").summary()

# %% [markdown]
# ## The same network without batch norm
#
# To take batch norm away we register a variant: any function that returns a Keras model can
# become a cnnlab model, trainable with `cnnlab.train` like the built-in ones.

# %%
layers = keras.layers


def vgg_plain(input_shape=(32, 32, 3), num_classes=10):
    """vgg_bn without its BatchNormalization layers."""
    x = inputs = keras.Input(shape=input_shape, name="image")
    for filters, rate in zip((32, 64, 128), (0.2, 0.3, 0.4)):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_uniform")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(rate)(x)
    x = layers.Dropout(0.5)(layers.Dense(128, activation="relu")(layers.Flatten()(x)))
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x))


if "vgg_plain" not in list_models():
    register_model(
        "vgg_plain",
        description="vgg_bn without batch norm (chapter 5's ablation)",
        paper="this tutorial",
        input_shape=(32, 32, 3),
        min_size=8,
        batch_norm=False,
    )(vgg_plain)

# %% [markdown]
# ## What augmentation does to an image
#
# The post's `ImageDataGenerator(width_shift_range=0.2, height_shift_range=0.2, zoom_range=0.2,
# horizontal_flip=True)` is `Augmentation(shift=0.2, zoom=0.2, flip=True)` here: a new random
# version of each training image at every epoch (empty borders filled with the nearest pixel).

# %%
data = cnnlab.load_dataset("cifar10_jpg")
augment = Augmentation(shift=0.2, zoom=0.2, flip=True, fill="nearest")
originals = data.train.x[:4]
fig, axes = plt.subplots(4, 5, figsize=(7, 6))
for row, image in enumerate(originals):
    axes[row, 0].imshow(image)
    for column in range(1, 5):
        axes[row, column].imshow(augment(image[None], np.random.default_rng(column))[0])
axes[0, 0].set_title("original")
for ax in axes.flat:
    ax.axis("off")
show(fig, "augmentation")

# %% [markdown]
# ## The ablation
#
# Three runs on the same images, seed and budget, each with `early_stopping=5` (stop when the
# validation loss has not improved for 5 epochs, as the post's `EarlyStopping(patience=5)`):
#
# 1. `vgg_bn` with augmentation: the post's set-up;
# 2. `vgg_bn` without augmentation;
# 3. `vgg_plain` (no batch norm) with augmentation.

# %%
common = dict(
    dataset="cifar10_jpg",
    val_split="first:10%",
    optimizer="adam",
    lr=1e-3,
    batch_size=64,
    seed=0,
    early_stopping=5,
    monitor="val_loss",
    runs_dir=OUT / "runs",
    verbose=False,
    precision="float32",
)
if SMALL:
    common.update(epochs=1, max_train_samples=1000, max_eval_samples=500)
else:
    common.update(epochs=15, max_train_samples=10000)
augmentation = {"shift": 0.2, "zoom": 0.2, "flip": True, "fill": "nearest"}
variants = {
    "batch norm + augmentation": dict(model="vgg_bn", augmentation=augmentation),
    "batch norm, no augmentation": dict(model="vgg_bn"),
    "no batch norm, augmentation": dict(model="vgg_plain", augmentation=augmentation),
}
runs = {}
for label, options in variants.items():
    runs[label] = cnnlab.train(**common, **options)
    m = runs[label].metrics
    print(
        f"{label:30s} test accuracy {m['accuracy']:.4f}  epochs {m['epochs']}  "
        f"stopped early: {m['stopped_early']}  {m['seconds']} s"
    )

# %% [markdown]
# ## Learning curves side by side

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for label, run in runs.items():
    history = run.history
    epochs = [row["epoch"] for row in history]
    line = left.plot(epochs, [row["val_accuracy"] for row in history], marker="o", label=label)[0]
    left.plot(epochs, [row["accuracy"] for row in history], linestyle=":", color=line.get_color())
    right.plot(epochs, [row["val_loss"] for row in history], marker="o", label=label)
left.set_title("accuracy (solid: validation, dotted: training)")
right.set_title("validation loss")
for ax in (left, right):
    ax.set_xlabel("epoch")
left.legend(fontsize=8)
show(fig, "ablation")

# %% [markdown]
# ## What to look for
#
# Read your own figures (at the small budget they are noise; at the full budget they tell):
#
# * **Without augmentation**: does training accuracy race ahead of validation accuracy, and does
#   the validation loss turn up after a few epochs? That is over-fitting, and early stopping is
#   there to catch it (`stopped early: True` in the printout).
# * **Without batch norm**: how much lower does the network start, and how far does it catch up
#   within the same number of epochs at the same learning rate?
# * **With both**: the gap between training and validation should be the smallest, and the
#   validation loss should keep falling longest.
#
# On the full CIFAR-10 training set, the `vgg-bn-cifar10` recipe (the post's exact settings, up to
# 50 epochs with patience 5) stopped after 39 epochs at 80.79% test accuracy against the post's
# 78.77% (`docs/results.md`). Run it with `cnnlab train --recipe vgg-bn-cifar10`.

# %%
summary = {label: round(run.metrics["accuracy"], 4) for label, run in runs.items()}
print(f"budget {BUDGET}: {summary}")
