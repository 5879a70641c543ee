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
# # Chapter 7: Your own images: inspect, split, train, fine-tune, explain, serve
#
# **Follows:** *Convolutional Neural Network with Keras*, by Jake Tae (training a VGG-style
# network on images with augmentation and early stopping), and *Classification Using Keras and
# Tensorflow*, by Richard Kuo (look at the data before training), applied to a folder of images
# that is not a ready-made benchmark.
#
# cnnlab reads any folder laid out as one sub-folder per class (`photos/<class>/*.jpg`), or with
# `train/` and `test/` above the class folders. To keep this chapter runnable anywhere, it first
# *writes* such a folder from CIFAR-10's test images (aeroplanes, cars and ships); point `PHOTOS`
# at your own folder instead and run the rest unchanged.
#
# **Running time.** `CNNLAB_TUTORIAL_BUDGET=small`: 60 images per class, one short epoch per
# model (about a minute). The default `full` budget uses 600 images per class and pre-trains on
# CIFAR-10 for 3 epochs: an estimated 8-12 minutes on a quiet 2-core CPU (estimate: `vgg_bn`
# trained at 118 images/s on a machine shared with other jobs, about 4.7x slower than quiet).
#
# The steps use `cnnlab inspect`, `cnnlab.explain` and `cnnlab serve` (docs/your-own-images.md,
# docs/explain-and-serve.md); an older cnnlab without them skips those cells and says so.

# %% [markdown]
# ## Setup

# %%
import base64
import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import cnnlab
from cnnlab._keras import keras

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch07"
OUT.mkdir(parents=True, exist_ok=True)
PHOTOS = OUT / "photos"  # your own folder here: PHOTOS/train/<class>/*, PHOTOS/test/<class>/*


def show(fig, name):
    """Save a figure under OUT and display it (inline in a notebook; a script only saves it)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure -> {OUT / name}.png")
    plt.show() if "ipykernel" in sys.modules else plt.close(fig)


# %% [markdown]
# ## A folder of images
#
# Three classes, JPEG files, `train/` and `test/` kept apart from the start (a test set chosen
# before any training is the only honest one).

# %%
CLASSES = ["airplane", "automobile", "ship"]
per_class = {"train": 60, "test": 20} if SMALL else {"train": 600, "test": 200}
source = cnnlab.load_dataset("cifar10_jpg")
for name in CLASSES:
    index = np.flatnonzero(source.test.y == source.class_names.index(name))
    start = 0
    for split, count in per_class.items():
        folder = PHOTOS / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in index[start : start + count]:
            Image.fromarray(source.test.x[i]).save(folder / f"{name}-{i:05d}.jpg", quality=95)
        start += count
print({split: sum(1 for _ in (PHOTOS / split).rglob("*.jpg")) for split in per_class})

# %% [markdown]
# ## Inspect
#
# Before training: how many images per class, which sizes and colour modes, any duplicates
# between train and test, any file that does not decode. `cnnlab inspect folder:PATH` reports
# all of it (Python: `cnnlab.data.inspect.inspect_dataset`).

# %%
data = cnnlab.load_dataset(f"folder:{PHOTOS}")
print(data)
if importlib.util.find_spec("cnnlab.data.inspect") is not None:
    report = importlib.import_module("cnnlab.data.inspect").inspect_dataset(data)
    print(json.dumps(report.to_dict(), indent=1, default=str)[:1500])
else:
    print("skipped: cnnlab inspect is not in this version of cnnlab; counting by hand instead")
    for split in ("train", "test"):
        counts = np.bincount(data.split(split).y, minlength=data.num_classes)
        print(split, dict(zip(data.class_names, counts.tolist())))
    sizes = {Image.open(p).size for p in PHOTOS.rglob("*.jpg")}
    print("image sizes on disk:", sizes)

# %% [markdown]
# And look at a few images of every class: wrong labels and odd images show up here first.

# %%
fig, axes = plt.subplots(data.num_classes, 6, figsize=(8, 1.5 * data.num_classes))
for label, row in enumerate(np.atleast_2d(axes)):
    for ax, index in zip(row, np.flatnonzero(data.train.y == label)[:6]):
        ax.imshow(data.train.x[index])
    row[0].set_title(data.class_names[label], fontsize=9, loc="left")
    for ax in row:
        ax.axis("off")
show(fig, "photos")

# %% [markdown]
# ## Split and train
#
# A validation split comes out of `train/` (`val_split="first:20%"`, deterministic), for early
# stopping and model selection; `test/` is used once, at the end. Small data needs augmentation.

# %%
budget = {"epochs": 2, "max_eval_samples": 200} if SMALL else {"epochs": 30}
scratch_run = cnnlab.train(
    model="vgg_bn",
    dataset=f"folder:{PHOTOS}",
    val_split="first:20%",
    batch_size=32,
    lr=1e-3,
    seed=0,
    augmentation={"shift": 0.1, "flip": True},
    early_stopping=8,
    restore_best=True,
    runs_dir=OUT / "runs",
    name=None,
    verbose=False,
    **budget,
)
print(f"from scratch: test accuracy {scratch_run.metrics['accuracy']:.4f}")

# %% [markdown]
# ## Fine-tune a network trained on more data
#
# With a few hundred images, starting from a network already trained on many images usually
# beats starting from random weights: its convolutions already detect edges, textures and parts.
# Here the bigger data set is the CIFAR-10 *training* split (disjoint from our folder's images).
# Fine-tuning: keep the trained layers, replace the classifier with one for our classes, train the
# new classifier with the rest frozen, then everything at a low learning rate.

# %%
pretrain_budget = {"epochs": 1, "max_train_samples": 2000, "max_eval_samples": 500} if SMALL else {"epochs": 3}
pretrained = cnnlab.train(
    model="vgg_bn",
    dataset="cifar10_jpg",
    batch_size=64,
    lr=1e-3,
    seed=0,
    augmentation={"shift": 0.1, "flip": True},
    runs_dir=OUT / "runs",
    verbose=False,
    **pretrain_budget,
)
print(f"pre-trained on CIFAR-10: test accuracy {pretrained.metrics['accuracy']:.4f}")

base = pretrained.model()
features = base.get_layer("dropout_fc1").output  # everything up to the old classifier
model = keras.Model(base.input, keras.layers.Dense(len(CLASSES), name="new_logits")(features))


def arrays(split):
    part = data.split(split)
    return pretrained.preprocessing(part.x), part.y  # the pre-trained network's own preprocessing


(x_train, y_train), (x_test, y_test) = arrays("train"), arrays("test")
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
for frozen, rate, epochs in ((True, 1e-3, 2 if SMALL else 10), (False, 1e-4, 1 if SMALL else 10)):
    for layer in model.layers[:-1]:
        layer.trainable = not frozen
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    print(
        f"{'head only' if frozen else 'all layers'}: test accuracy {model.evaluate(x_test, y_test, verbose=0)[1]:.4f}"
    )

# %% [markdown]
# (cnnlab versions with weight loading for fine-tuning do this from `cnnlab train`; here it is
# written out in Keras, which is what such an option does.)
#
# ## Predict on files
#
# `cnnlab.predict` (shell: `cnnlab predict RUN image.jpg folder/`) decodes any image file,
# converts and resizes it as in training, and returns the most probable classes.

# %%
files = sorted((PHOTOS / "test").rglob("*.jpg"))[:: max(1, len(y_test) // 5)][:5]
for item in cnnlab.predict(scratch_run.path, files, top_k=2):
    top = ", ".join(f"{t['class']} {t['probability']:.2f}" for t in item["top"])
    print(f"{Path(item['file']).parent.name:>10s}/{Path(item['file']).name}: {top}")

# %% [markdown]
# ## Explain
#
# Grad-CAM over a few test files (chapter 6): does the network look at the vehicle, or at sky
# and water? For ships and aeroplanes the background is a strong clue, and the maps show it.

# %%
explain = (
    getattr(importlib.import_module("cnnlab.explain"), "explain", None)
    if importlib.util.find_spec("cnnlab.explain")
    else None
)
if explain is None:
    print("skipped: cnnlab.explain is not in this version of cnnlab")
else:
    results = explain(scratch_run.path, files, methods=["gradcam", "saliency"], out=OUT / "explanations")
    print(f"{len(results)} images explained -> {OUT / 'explanations'}")

# %% [markdown]
# ## Serve
#
# `cnnlab serve RUN` answers HTTP requests with the model's predictions. Here it is started on a
# free local port, asked once, and stopped.

# %%
if importlib.util.find_spec("cnnlab.serve") is None:
    print("skipped: cnnlab serve is not in this version of cnnlab")
else:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", str(scratch_run.path), "--port", str(port)])
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        # POST /predict takes a multipart upload or JSON with base64 images (docs/explain-and-serve.md).
        body = json.dumps({"images": [base64.b64encode(files[0].read_bytes()).decode()], "names": [files[0].name]})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        print(urllib.request.urlopen(request, timeout=30).read().decode()[:500])
    finally:
        server.terminate()
        server.wait(timeout=30)

# %% [markdown]
# ## Summary
#
# Your own folder goes through the same steps as the benchmarks: look at it, split it once,
# train with augmentation and early stopping, prefer fine-tuning when images are few, check what
# the network looks at, then serve it.

# %%
print(f"budget {BUDGET}: from scratch {scratch_run.metrics['accuracy']:.4f}")
