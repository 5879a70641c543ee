"""Bad input to the run commands: a one-line error naming the culprit, and the run folder untouched."""

from __future__ import annotations

from tests.conftest import assert_clean_error, run_cli
from tests.runs.helpers import folder_fingerprint


def test_non_image_file_is_a_clean_error(short_run, tmp_path):
    fake = tmp_path / "digit.png"
    fake.write_text("this is not a PNG\n")
    before = folder_fingerprint(short_run.path)
    proc = run_cli("predict", short_run.path, fake)
    assert_clean_error(proc, str(fake))
    assert proc.returncode == 2
    assert folder_fingerprint(short_run.path) == before


def test_folder_that_is_not_a_run_is_a_clean_error(tmp_path):
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello\n")
    before = folder_fingerprint(folder)
    for command in (["evaluate", folder], ["export", folder, "--format", "onnx"]):
        proc = run_cli(*command)
        assert_clean_error(proc, str(folder))
        assert proc.returncode == 2
    assert folder_fingerprint(folder) == before


def test_bad_options_are_clean_errors(short_run):
    before = folder_fingerprint(short_run.path)
    assert_clean_error(run_cli("evaluate", short_run.path, "--split", "train"), "--split")
    assert_clean_error(run_cli("export", short_run.path, "--format", "tflite"), "--format")
    assert folder_fingerprint(short_run.path) == before
