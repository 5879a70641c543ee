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
# # Chapter 6: What the network looks at: filters, feature maps, Grad-CAM, saliency
#
# **Follows:** *Classifying Images with Deep Convolutional Neural Networks*, by Hsi-Pin Ma (feature
# maps and the "feature hierarchy": early layers find low-level features, later layers combine
# them), and *Convolutional Neural Network with Keras*, by Jake Tae (the VGG-style network on
# CIFAR-10 of chapter 5).
#
# A trained network is not a black box: its first-layer filters are small images we can draw, its
# feature maps show where each filter fires, and gradient-based explanations (saliency maps,
# Grad-CAM) show which pixels moved the score of the predicted class.
#
# **Running time.** `CNNLAB_TUTORIAL_BUDGET=small` trains on a few thousand images for one epoch
# (under a minute). The default `full` budget trains `mnist_cnn` with the `fast-mnist` recipe (one
# epoch of all 60,000 digits) and `vgg_bn` on CIFAR-10 for 4 epochs: an estimated 7-10 minutes
# on a quiet 2-core CPU (estimate: `vgg_bn` trained at 118 images/s on a machine shared with other
# jobs, about 4.7x slower than quiet; `fast-mnist` trains in about 10 s, `docs/results.md`).
#
# Grad-CAM, saliency and Integrated Gradients come from `cnnlab.explain` (the same functions as
# `cnnlab explain RUN IMAGE --method ...`); an older cnnlab without it skips those cells.

# %% [markdown]
# ## Setup

# %%
import importlib
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnlab
from cnnlab._keras import keras

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch06"
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name):
    """Save a figure under OUT and display it (inline in a notebook; a script only saves it)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure -> {OUT / name}.png")
    plt.show() if "ipykernel" in sys.modules else plt.close(fig)


def explain_function(name):
    """``cnnlab.explain``'s ``name`` (grad_cam, saliency...), or None where this cnnlab lacks it."""
    for module in ("cnnlab.explain", "cnnlab.explain.methods"):
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            found = None
        if found is not None:
            return found
    print(f"skipped: cnnlab.explain.{name} is not in this version of cnnlab")
    return None


# %% [markdown]
# ## Two trained networks
#
# `mnist_cnn` (two 5x5 convolutions, the lecture's network) trained with the `fast-mnist` recipe,
# and `vgg_bn` (chapter 5) on CIFAR-10 (JPEG copy). The recipe narrows `mnist_cnn` for speed; here it
# keeps the lecture's widths (32 and 64 filters, a 1,024-unit dense layer), so that there are 32
# first-layer filters to look at.

# %%
small = {"max_train_samples": 3000, "max_eval_samples": 500, "epochs": 1} if SMALL else {}
lecture_widths = {"filters": [32, 64], "units": 1024}
mnist_run = cnnlab.train(
    recipe="fast-mnist", model_options=lecture_widths, runs_dir=OUT / "runs", verbose=False, **small
)
cifar_run = cnnlab.train(
    model="vgg_bn",
    dataset="cifar10_jpg",
    batch_size=64,
    lr=1e-3,
    seed=0,
    augmentation={"shift": 0.1, "flip": True},
    runs_dir=OUT / "runs",
    verbose=False,
    **{"epochs": 4, **small},
)
for run in (mnist_run, cifar_run):
    print(f"{run.path.name}: test accuracy {run.metrics['accuracy']:.4f}")

# %% [markdown]
# ## First-layer filters
#
# `mnist_cnn`'s first layer has 32 filters of 5x5 pixels. Drawn as images (blue negative, red
# positive), many are edge and stroke detectors at different angles, like the hand-made
# filters of chapter 2, but learnt.

# %%
mnist_model = mnist_run.model()
convolutions = [layer for layer in mnist_model.layers if isinstance(layer, keras.layers.Conv2D)]
kernel = keras.ops.convert_to_numpy(convolutions[0].kernel)  # (5, 5, 1, 32), HWIO
fig, axes = plt.subplots(4, 8, figsize=(8, 4.2))
for index, ax in enumerate(axes.flat):
    weights = kernel[:, :, 0, index]
    limit = np.abs(weights).max()
    ax.imshow(weights, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.axis("off")
fig.suptitle(f"{convolutions[0].name}: 32 filters, 5x5")
show(fig, "filters")

# %% [markdown]
# ## Feature maps
#
# A feature map is one filter's response at every position. A model that stops at a given layer
# (`keras.Model(model.input, layer.output)`) gives them for any image: the first layer responds
# to strokes and edges, the second to combinations of them, at a coarser resolution.

# %%
mnist = mnist_run.dataset()
digit = mnist.test.x[:1]
x = mnist_run.preprocessing(digit)
fig, axes = plt.subplots(len(convolutions), 9, figsize=(10, 1.3 * len(convolutions) + 0.3))
axes = np.atleast_2d(axes)
for row, layer in enumerate(convolutions):
    maps = keras.ops.convert_to_numpy(keras.Model(mnist_model.input, layer.output)(x))[0]
    axes[row, 0].imshow(digit[0, :, :, 0], cmap="gray")
    axes[row, 0].set_title("input" if row == 0 else "", fontsize=8)
    for column in range(1, 9):
        axes[row, column].imshow(maps[:, :, column - 1], cmap="viridis")
        axes[row, column].set_title(f"{layer.name}[{column - 1}]" if column == 1 else "", fontsize=7)
for ax in axes.flat:
    ax.axis("off")
show(fig, "feature_maps")

# %% [markdown]
# ## Saliency maps
#
# A saliency map is the gradient of the predicted class's logit with respect to the input
# pixels (Simonyan, Vedaldi & Zisserman 2014): where a small change of a pixel would change the
# score most. `cnnlab.explain.saliency(model, x, targets)` returns one map per image.

# %%
cifar_model = cifar_run.model()
cifar = cifar_run.dataset()
images = cifar.test.x[:6]
x_cifar = cifar_run.preprocessing(images)
predicted = keras.ops.convert_to_numpy(cifar_model(x_cifar)).argmax(axis=1)
names = [cifar.class_names[i] for i in predicted]

saliency = explain_function("saliency")
if saliency is not None:
    maps = np.asarray(saliency(cifar_model, x_cifar, predicted))
    fig, axes = plt.subplots(2, 6, figsize=(11, 4))
    for i in range(6):
        axes[0, i].imshow(images[i])
        axes[0, i].set_title(f"predicted: {names[i]}", fontsize=8)
        axes[1, i].imshow(maps[i], cmap="hot")
    for ax in axes.flat:
        ax.axis("off")
    show(fig, "saliency")

# %% [markdown]
# ## Grad-CAM
#
# Grad-CAM (Selvaraju et al. 2017) weights the last convolutional layer's feature maps by the
# gradient of the class score, averaged over each map, and keeps the positive part: a coarse map
# of the regions that speak *for* the class, upsampled to the image and laid over it.

# %%
grad_cam = explain_function("grad_cam")
if grad_cam is not None:
    for model, batch, shown, label, name in (
        (cifar_model, x_cifar, images, names, "grad_cam_cifar10"),
        (mnist_model, mnist_run.preprocessing(mnist.test.x[:6]), mnist.test.x[:6, :, :, 0], None, "grad_cam_mnist"),
    ):
        targets = keras.ops.convert_to_numpy(model(batch)).argmax(axis=1)
        cams = np.asarray(grad_cam(model, batch, targets))
        fig, axes = plt.subplots(1, 6, figsize=(11, 2.2))
        for i, ax in enumerate(axes):
            ax.imshow(shown[i], cmap="gray" if shown.ndim == 3 else None)
            ax.imshow(cams[i], cmap="jet", alpha=0.45)
            ax.set_title(label[i] if label else f"predicted {targets[i]}", fontsize=8)
            ax.axis("off")
        show(fig, name)

# %% [markdown]
# ## Integrated gradients
#
# Saliency looks at one point; integrated gradients (Sundararajan, Taly & Yan 2017) add the
# gradients up along the straight path from a baseline (a black image) to the input, so that the
# attributions sum to the change in the score.

# %%
integrated_gradients = explain_function("integrated_gradients")
if integrated_gradients is not None:
    baseline = cifar_run.preprocessing(np.zeros_like(images[:3]))
    attributions = np.asarray(
        integrated_gradients(cifar_model, x_cifar[:3], predicted[:3], baseline, steps=16 if SMALL else 64)
    )
    fig, axes = plt.subplots(2, 3, figsize=(6, 4))
    for i in range(3):
        axes[0, i].imshow(images[i])
        axes[0, i].set_title(names[i], fontsize=8)
        axes[1, i].imshow(np.abs(attributions[i]).sum(axis=-1), cmap="hot")
    for ax in axes.flat:
        ax.axis("off")
    show(fig, "integrated_gradients")

# %% [markdown]
# ## From the shell
#
# The same explanations for image files, written as PNG files, are one command in cnnlab versions
# that have `cnnlab explain` (`cnnlab explain RUN_FOLDER image.png --method gradcam`).
#
# ## Summary
#
# * Filters and feature maps come straight from the model: its weights, and sub-models that stop
#   at a layer.
# * Saliency, Grad-CAM and integrated gradients need gradients of a class score; a network that
#   is right for the wrong reasons (looking at the background) shows it here.
#
# Chapter 7 applies all of it to a folder of your own images.

# %%
print(f"budget {BUDGET}: mnist {mnist_run.metrics['accuracy']:.4f}, cifar10 {cifar_run.metrics['accuracy']:.4f}")
