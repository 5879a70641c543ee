"""One test per finding of the reliability review that is not already a fuzz case elsewhere.

Findings 1 and 2 (exports over a run's model or a user's file), 3 and 4 (two writers, a kill
during creation: see test_processes.py), 5 (hostile data: test_fuzz_data.py), 6 (OS errors:
test_fuzz_commands.py), 7 (valid containers, wrong contents: test_fuzz_run_folders.py and
test_fuzz_data.py), 8 (--name escaping --runs-dir, resume on different data), 10 (the ONNX
sidecar's output name), 11 (non-finite weights: test_fuzz_run_folders.py; warnings and the
final model write: test_fuzz_commands.py and test_processes.py).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tests.reliability.conftest import call_cli


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_finding_1_export_never_overwrites_the_runs_model(run_copy, capsys):
    model = run_copy / "model.keras"
    before = _digest(model)
    code, out, err = call_cli(capsys, "export", run_copy, "--format", "keras", "--out", model)
    assert code == 2 and "run's own model.keras" in err
    code, out, err = call_cli(capsys, "export", run_copy, "--format", "keras", "--out", model, "--force")
    assert code == 2, "--force never reaches a run's own files"
    assert _digest(model) == before
    code, out, err = call_cli(capsys, "evaluate", run_copy, "--json")
    assert code == 0 and json.loads(out)["loss"] > 0


def test_finding_2_export_never_replaces_a_users_file_without_force(run_copy, tmp_path, capsys):
    notes = tmp_path / "some-file.txt"
    notes.write_text("a user's notes\n")
    code, out, err = call_cli(capsys, "export", run_copy, "--format", "saved_model", "--out", notes)
    assert code == 2 and "--force" in err and str(notes) in err
    assert notes.read_text() == "a user's notes\n"


def test_finding_8_name_stays_inside_runs_dir(tmp_path, capsys):
    runs = tmp_path / "runs"
    for name in ("../outside", "a/../../outside", str(tmp_path / "outside"), "..", ".", "x\x00y"):
        code, out, err = call_cli(
            capsys,
            "train",
            "--model",
            "softmax",
            "--dataset",
            "digits",
            "--steps",
            "1",
            "--runs-dir",
            runs,
            "--name",
            name,
        )
        assert code == 2 and "--name" in err, (name, err)
    assert not (tmp_path / "outside").exists() and not runs.exists()


def test_finding_8_resume_on_different_data_is_refused(tmp_path, capsys):
    """The run records a fingerprint of its data; a resume on changed images is one line naming it."""
    from PIL import Image

    from cnnlab.training import train

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / cls / f"{i}.png")
    run = train("softmax", f"folder:{root}", runs_dir=tmp_path / "runs", name="f", steps=2, batch_size=8, verbose=False)
    assert len(run.config["data_fingerprint"]) == 32
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a" / "0.png")  # one image changed
    config = run.path / "config.json"
    before = _digest(config)
    code, out, err = call_cli(capsys, "train", "--resume", run.path, "--steps", "4")
    assert code == 2 and err.count("\n") == 1 and "data_fingerprint" in err and str(config) in err, err
    assert _digest(config) == before


def test_finding_10_onnx_sidecar_names_the_graphs_real_output(run_copy, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    out = tmp_path / "model.onnx"
    code, stdout, err = call_cli(capsys, "export", run_copy, "--format", "onnx", "--out", out)
    assert code == 0, err
    sidecar = json.loads((tmp_path / "model.onnx.json").read_text())
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sidecar["output"]["name"] == session.get_outputs()[0].name
    assert sidecar["input"]["name"] == session.get_inputs()[0].name
    x = np.zeros((2, *sidecar["input"]["shape"][1:]), np.float32)
    (probabilities,) = session.run([sidecar["output"]["name"]], {sidecar["input"]["name"]: x})
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert sidecar["output"]["name"] in sidecar["how_to_use"]


def test_run_folder_schema_version_is_written_and_checked(tiny_run):
    from cnnlab.training.run import RUN_SCHEMA

    assert tiny_run.config["schema"] == RUN_SCHEMA
    assert (tiny_run.path / ".lock").read_text() == ""  # released: no holder recorded
