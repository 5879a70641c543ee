"""The zoo on the PyTorch and JAX backends, each in its own process (Keras fixes the backend per process)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from cnnlab.models import list_models, model_info

# Builds each model at its default input with 1 and 3 channels, runs a batch of 2 and a training
# step, and reports the output shapes and parameter counts.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from cnnlab._keras import keras
    from cnnlab.models import count_params, create_model, model_info

    report = {"backend": keras.backend.backend()}
    for name in sys.argv[1:]:
        info = model_info(name)
        height, width, _ = info.input_shape
        shapes = []
        for channels in (1, 3):
            model = create_model(name, (height, width, channels), num_classes=10)
            x = np.random.default_rng(0).random((2, height, width, channels), dtype=np.float32)
            shapes.append(list(keras.ops.convert_to_numpy(model(x, training=False)).shape))
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = model.train_on_batch(x, np.array([1, 2]))
        report[name] = {"shapes": shapes, "params": count_params(model).total, "loss": float(loss)}
    print(json.dumps(report))
    """
)


def _run_on(backend: str, names: list[str]) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *names], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    return report


def _tutorial_networks() -> list[str]:
    return [n for n in list_models() if model_info(n).reference_counts_all]


def _check(report: dict, names: list[str]) -> None:
    from cnnlab.models import count_params, create_model

    for name in names:
        assert report[name]["shapes"] == [[2, 10], [2, 10]], name
        assert report[name]["loss"] == pytest.approx(report[name]["loss"]) and report[name]["loss"] > 0
        # same architecture on every backend: the 3-channel parameter count matches TensorFlow's
        info = model_info(name)
        tf_model = create_model(name, (*info.input_shape[:2], 3), num_classes=10)
        assert report[name]["params"] == count_params(tf_model).total, name


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_tutorial_networks_and_resnet20_on_pytorch():
    names = [*_tutorial_networks(), "resnet20"]
    assert len(names) >= 6
    _check(_run_on("torch", names), names)


@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_softmax_and_lenet5_on_jax():
    names = ["softmax", "lenet5"]  # cheap: XLA compiles each training step (resnet20 took minutes here)
    _check(_run_on("jax", names), names)
