"""Level 2 on JAX and PyTorch: the same LeNet-5 step as on TensorFlow, run in subprocesses.

Keras fixes its backend when first imported, so each backend gets its own process. Both are
given the weights and the batch this (TensorFlow) process uses, and must reproduce its logits,
losses and updated weights.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab import lowlevel
from cnnlab.levels import relative_difference
from tests.lowlevel.lowlevel_data import lenet_batch, mnist  # noqa: F401  (fixtures)

PROBE = Path(__file__).with_name("backend_probe.py")


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", [pytest.param("jax", marks=pytest.mark.jax), pytest.param("torch", marks=pytest.mark.torch)]
)
def test_backend_reproduces_the_tensorflow_step(backend, lenet_batch, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"backend {backend} is not installed")
    x, y = lenet_batch[0][:32], lenet_batch[1][:32]
    net = lowlevel.build("lenet5", (32, 32, 1), 10, init="truncated_normal")
    # NumPy initialisers: the same seed gives the same start on every backend
    built_there = lowlevel.layers.truncated_normal((5, 5, 1, 6), seed=0)
    np.testing.assert_array_equal(net.get_weights()[0], built_there)
    checkpoint = lowlevel.save_checkpoint(net, tmp_path / "start.npz")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    expected_logits = lowlevel.predict_logits(net, x)
    optimizer = lowlevel.SGD(0.1)
    expected_losses = [lowlevel.train_step(net, optimizer, x, y, training=False)[0] for _ in range(3)]

    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(PROBE.parent)}
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(checkpoint), str(tmp_path / "batch.npz"), str(tmp_path / "out.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as out:
        assert str(out["backend"]) == backend
        assert np.abs(out["logits"] - expected_logits).max() <= 1e-4
        np.testing.assert_allclose(out["losses"], expected_losses, rtol=1e-5)
        weights = [out[f"w{i}"] for i in range(len(net.variables))]
        assert relative_difference(weights, net.get_weights()) <= 1e-5
        assert np.isfinite(out["training_loss"]) and bool(out["round_trip"])
