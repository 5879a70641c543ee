"""cnnlab's BatchNormalization: Keras's maths with a fused kernel in training (TensorFlow's, torch's)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnnlab._keras import keras

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="needs the TensorFlow backend")


def _pair(epsilon, momentum):
    from cnnlab.models.layers import BatchNormalization

    ours = BatchNormalization(epsilon=epsilon, momentum=momentum)
    theirs = keras.layers.BatchNormalization(epsilon=epsilon, momentum=momentum)
    x = np.random.default_rng(0).normal(1.0, 3.0, size=(16, 8, 8, 5)).astype("float32")
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 5))
        layer.beta.assign(np.linspace(-1.0, 1.0, 5))
    return ours, theirs, x


@tensorflow_only
@pytest.mark.parametrize("epsilon,momentum", [(1e-3, 0.99), (1e-5, 0.9)])
def test_training_step_matches_keras(epsilon, momentum):
    import tensorflow as tf

    ours, theirs, x = _pair(epsilon, momentum)
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype("float32"))
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)  # not y * y: its input gradient is ~0 by symmetry
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, layer.moving_mean, layer.moving_variance))
    (y1, g1, mm1, mv1), (y2, g2, mm2, mv2) = results
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    # The moving variance uses the biased batch variance, as Keras's does (the fused op returns
    # the unbiased one): a missing (n-1)/n factor would be off by 1/1024 relative, 1e-3 here.
    np.testing.assert_allclose(mm1, mm2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mv1, mv2, rtol=1e-6)
    for mine, keras_grad in zip(g1, g2):
        scale = float(np.abs(keras_grad).max())
        assert float(np.abs(np.asarray(mine) - np.asarray(keras_grad)).max()) <= 1e-5 * scale


@tensorflow_only
def test_inference_is_keras_own():
    ours, theirs, x = _pair(1e-3, 0.99)
    for layer in (ours, theirs):
        layer.moving_mean.assign(np.arange(5.0))
        layer.moving_variance.assign(np.arange(1.0, 6.0))
    np.testing.assert_array_equal(ours(x, training=False), theirs(x, training=False))


@tensorflow_only
def test_a_saved_model_loads_back(tmp_path):
    from cnnlab.models import create_model

    model = create_model("vgg_bn", (32, 32, 3), 10)
    x = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("block1_bn1")).__module__ == "cnnlab.models.layers"
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)


TORCH_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    from cnnlab._keras import keras
    from cnnlab.models.layers import BatchNormalization

    calls = []
    native_batch_norm = torch.native_batch_norm
    torch.native_batch_norm = lambda *args: calls.append(1) or native_batch_norm(*args)
    report = {}
    rng = np.random.default_rng(0)
    x_np = rng.normal(1.0, 3.0, size=(16, 8, 8, 5)).astype("float32")
    w_np = rng.normal(size=x_np.shape).astype("float32")
    for policy in ("float32", "mixed_bfloat16"):
        for epsilon, momentum in ((1e-3, 0.99), (1e-5, 0.6)):
            results = []
            for cls in (BatchNormalization, keras.layers.BatchNormalization):
                layer = cls(epsilon=epsilon, momentum=momentum, dtype=policy)
                layer.build(x_np.shape)
                layer.gamma.assign(np.linspace(0.5, 2.0, 5))
                layer.beta.assign(np.linspace(-1.0, 1.0, 5))
                x = torch.tensor(x_np).to(getattr(torch, layer.compute_dtype)).requires_grad_(True)
                y = layer(x, training=True)
                loss = (y.float() * torch.tensor(w_np)).sum()
                grads = torch.autograd.grad(loss, [x, layer.gamma.value, layer.beta.value])
                arrays = [y.detach().float().numpy(), layer.moving_mean.numpy(), layer.moving_variance.numpy()]
                results.append((str(y.dtype), arrays + [g.float().numpy() for g in grads]))
            (ours_dtype, ours), (keras_dtype, theirs) = results
            report[f"{policy} eps={epsilon} momentum={momentum}"] = {
                "dtypes": [ours_dtype, keras_dtype],
                "worst": [float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(ours, theirs)],
                "moved": bool(np.abs(ours[1]).max() > 0),
                "fused_calls": len(calls),
            }
            calls.clear()
    print(json.dumps(report))
    """
)


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_torch_training_step_matches_keras():
    """On torch, the fused kernel gives Keras's outputs, moving statistics and gradients.

    Output, moving mean and variance, and the gradients for the input, gamma and beta, float32 and
    mixed bfloat16: to float32 rounding (Keras's variance is E[x^2] - E[x]^2, the kernel's a
    two-pass one, so the last bits differ), and to a bfloat16 step where the output is bfloat16.
    """
    env = {**os.environ, "KERAS_BACKEND": "torch", "CNNLAB_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", TORCH_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report) == 4
    for case, result in report.items():
        assert result["dtypes"][0] == result["dtypes"][1], case
        assert result["moved"], case
        assert result["fused_calls"] == 1, case  # ours used the kernel, Keras's layer did not
        output, moving_mean, moving_variance, *grads = result["worst"]
        bfloat16 = case.startswith("mixed")
        assert output < (4e-3 if bfloat16 else 1e-5), (case, result["worst"])
        assert moving_mean < 1e-5 and moving_variance < 1e-5, (case, result["worst"])
        for worst in grads:
            assert worst < (4e-3 if bfloat16 else 1e-5), (case, result["worst"])
