"""``cnnlab export``: each export, loaded with its own runtime, gives the run's probabilities (<= 1e-4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.runs.helpers import reference_probabilities

TOLERANCE = 1e-4
IMAGES = 100


def _load_and_predict(format: str, path, x: np.ndarray) -> np.ndarray:
    """Probabilities from the export, through the runtime a user of that format would use."""
    if format == "keras":
        from cnnlab._keras import keras

        return np.asarray(keras.saving.load_model(path).predict(x, verbose=0))
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # keep a reference: its variables live as long as it does
        return loaded.serve(tf.constant(x)).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("format", ["keras", "saved_model", "onnx"])
def test_export_round_trip(short_run, test_split, format, tmp_path):
    from cnnlab.inference import export

    names = {"keras": "model.keras", "saved_model": "saved", "onnx": "model.onnx"}
    exported = export(short_run, format=format, out=tmp_path / names[format])
    assert exported.path == tmp_path / names[format] and exported.path.exists()

    images = test_split.x[:IMAGES]
    expected = reference_probabilities(short_run, images)
    got = _load_and_predict(format, exported.path, short_run.preprocessing(images))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)  # probabilities, not logits
    assert np.abs(got - expected).max() <= TOLERANCE

    sidecar = json.loads(exported.metadata.read_text())
    assert sidecar["class_names"] == short_run.class_names
    assert sidecar["preprocessing"] == short_run.preprocessing.to_dict()
    assert sidecar["output"]["kind"] == "softmax probabilities"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names[format], names[format] + ".json"])


def test_export_cli_replaces_an_existing_saved_model(short_run, tmp_path):
    from cnnlab.inference import export

    out = tmp_path / "saved_model"
    export(short_run, format="saved_model", out=out)
    stale = out / "stale-file"
    stale.write_text("from the first export\n")
    proc = run_cli("export", short_run.path, "--format", "saved_model", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"saved_model: {out}" in proc.stdout
    assert not stale.exists()  # the folder was replaced as a whole, not written into
    assert (out / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model", "saved_model.json"]
