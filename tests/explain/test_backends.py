"""Every method gives the same maps on TensorFlow, JAX and PyTorch (each backend in its own process,
since Keras fixes the backend per process), for the same saved model and images."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnnlab.explain import METHODS
from tests.conftest import REPO
from tests.explain.patches import CLASSES, patch_images

# Loads the model, computes every method's maps for the images and targets, saves them as .npz.
SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from cnnlab._keras import keras
    from cnnlab.data.preprocessing import Preprocessing
    from cnnlab.explain import METHODS, Explainer

    model_path, data_path, out_path = sys.argv[1:4]
    data = np.load(data_path)
    model = keras.saving.load_model(model_path, compile=False)
    pre = Preprocessing(image_size=data["images"].shape[1:3], channels=1, normalize="unit")
    explainer = Explainer(model, pre, [str(i) for i in range(model.output_shape[-1])])
    maps = {m: explainer.maps(data["images"], m, data["targets"], steps=16, samples=4) for m in METHODS}
    np.savez(out_path, backend=keras.backend.backend(), **maps)
    """
)


def _available(backend: str) -> bool:
    return importlib.util.find_spec({"jax": "jax", "torch": "torch"}[backend]) is not None


@pytest.mark.slow
def test_same_maps_on_every_backend(patch_model, patch_preprocessing, tmp_path):
    from cnnlab.explain import Explainer

    backends = [b for b in ("jax", "torch") if _available(b)]
    if not backends:
        pytest.skip("neither JAX nor PyTorch is installed")
    images, targets, _ = patch_images(3, seed=5)
    model_path = tmp_path / "patchnet.keras"
    patch_model.save(model_path)
    np.savez(tmp_path / "data.npz", images=images, targets=targets)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "CNNLAB_THREADS": "1",
    }
    processes = {}
    for backend in backends:  # both at once: each is mostly start-up time
        out = tmp_path / f"{backend}.npz"
        processes[backend] = (
            out,
            subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(model_path), str(tmp_path / "data.npz"), str(out)],
                env={**env, "KERAS_BACKEND": backend},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )

    explainer = Explainer(patch_model, patch_preprocessing, CLASSES)
    reference = {m: explainer.maps(images, m, targets, steps=16, samples=4) for m in METHODS}
    for backend, (out, process) in processes.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        maps = np.load(out)
        assert str(maps["backend"]) == backend
        for method in METHODS:
            expected = reference[method]
            assert expected.max() > 0, method
            np.testing.assert_allclose(
                maps[method], expected, atol=2e-3 * expected.max(), rtol=2e-3, err_msg=f"{method} on {backend}"
            )
