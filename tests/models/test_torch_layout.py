"""cnnlab.torch_layout: the copy-free permute gives Keras's own numbers, for every model in the registry.

Run in a torch process (Keras fixes the backend per process). Each model's logits and the gradients of
a loss with respect to every weight are computed with Keras's function and with cnnlab's, on the
same weights and images, and must agree to float32 rounding (most models: bit for bit; where oneDNN
picks another kernel for a memory layout, as for airbench's 3-channel stem, the last bits differ).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    from cnnlab._keras import keras
    from cnnlab import torch_layout
    from cnnlab.models import create_model, list_models, model_info
    import keras.src.backend.torch.nn as torch_nn

    installed = torch_layout.apply() and torch_nn._transpose_spatial_inputs.__name__ == "transpose_spatial_inputs"
    report = {"installed_at_import": installed, "models": {}}
    rng = np.random.default_rng(0)
    for name in list_models():
        info = model_info(name)
        size = max(info.min_size or 0, 32)
        shape = (size, size, info.input_shape[2])
        model = create_model(name, shape, num_classes=10)
        x = torch.tensor(rng.random((2, *shape), dtype=np.float32))
        results = []
        for layout in ("keras", "cnnlab"):
            torch_layout.remove() if layout == "keras" else torch_layout.apply()
            logits = model(x, training=False)
            grads = torch.autograd.grad(logits.square().sum(), [v.value for v in model.trainable_variables])
            results.append([logits.detach().numpy(), *[g.numpy() for g in grads]])
        keras_out, cnnlab_out = results
        report["models"][name] = {
            "arrays": len(keras_out),
            "equal": all(np.array_equal(a, b) for a, b in zip(keras_out, cnnlab_out)),
            # the largest difference, relative to the largest value of the same array
            "worst": max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)) for a, b in zip(keras_out, cnnlab_out)),
            "nonzero": bool(np.abs(keras_out[0]).sum() > 0),
        }
    print(json.dumps(report))
    """
)


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_every_model_gives_keras_own_logits_and_gradients():
    env = {**os.environ, "KERAS_BACKEND": "torch", "CNNLAB_THREADS": "1"}
    env.pop("CNNLAB_TORCH_LAYOUT", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["installed_at_import"]  # cnnlab._keras installs it on the torch backend
    models = report["models"]
    assert len(models) >= 20
    for name, result in models.items():
        assert result["worst"] < 1e-5, (name, result["worst"])
        assert result["nonzero"] and result["arrays"] > 1, name
    assert sum(result["equal"] for result in models.values()) >= len(models) // 2  # mostly the same bits
