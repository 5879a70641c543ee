"""Bad options, hostile output paths, unreadable images and operating-system faults, command by command.

Output paths: an export, figure or report never lands on a run folder's own files, and never
replaces a file of another kind without ``--force`` (findings 1 and 2). Faults: a full disk, a
read-only file system, a file-size limit or a quota met while writing gives one line naming
the path and the reason, leaves no temporary file, and leaves the run folder as it was
(finding 6).
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

import pytest

from tests.reliability.conftest import call_cli, no_temporaries, snapshot, unchanged

# ----------------------------------------------------------------------------- options


def _options(run: Path, tmp: Path, image: Path) -> dict[str, tuple[list, list]]:
    runs = tmp / "runs-here"
    (tmp / "a-file").write_text("x\n")
    return {
        "evaluate-split": (["evaluate", run, "--split", "train"], ["--split"]),
        "evaluate-batch-zero": (["evaluate", run, "--batch-size", "0"], ["--batch-size"]),
        "evaluate-checkpoint": (["evaluate", run, "--checkpoint", "newest"], ["newest"]),
        "evaluate-missing-run": (["evaluate", tmp / "no-such-run"], [tmp / "no-such-run"]),
        "evaluate-file-as-run": (["evaluate", tmp / "a-file"], [tmp / "a-file"]),
        "evaluate-empty-folder": (["evaluate", tmp], [tmp]),
        "predict-top-k-zero": (["predict", run, image, "--top-k", "0"], ["--top-k"]),
        "predict-top-k-text": (["predict", run, image, "--top-k", "many"], ["--top-k"]),
        "export-format": (["export", run, "--format", "tflite"], ["--format"]),
        "export-keras-suffix": (["export", run, "--format", "keras", "--out", tmp / "m.h5"], ["--out"]),
        "export-checkpoint": (["export", run, "--checkpoint", "worst"], ["worst"]),
        "plot-missing-run": (["plot", tmp / "nothing"], [tmp / "nothing"]),
        "name-dotdot": (
            [
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
                "../escaped",
            ],
            ["--name"],
        ),
        "name-absolute": (
            [
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
                str(tmp / "abs"),
            ],
            ["--name"],
        ),
        "name-nested": (
            ["train", "--model", "softmax", "--dataset", "digits", "--steps", "1", "--runs-dir", runs, "--name", "a/b"],
            ["--name"],
        ),
        "name-hidden": (
            [
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
                ".hidden",
            ],
            ["--name"],
        ),
        "name-empty": (
            ["train", "--model", "softmax", "--dataset", "digits", "--steps", "1", "--runs-dir", runs, "--name", " "],
            ["--name"],
        ),
        "name-existing-run": (
            [
                "train",
                "--model",
                "softmax",
                "--dataset",
                "digits",
                "--steps",
                "1",
                "--runs-dir",
                run.parent,
                "--name",
                run.name,
            ],
            ["already exists"],
        ),
        "name-foreign-folder": (
            [
                "train",
                "--model",
                "softmax",
                "--dataset",
                "digits",
                "--steps",
                "1",
                "--runs-dir",
                tmp.parent,
                "--name",
                tmp.name,
            ],
            ["not a cnnlab run folder"],
        ),
        "runs-dir-is-file": (
            [
                "train",
                "--model",
                "softmax",
                "--dataset",
                "digits",
                "--steps",
                "1",
                "--runs-dir",
                tmp / "a-file",
                "--name",
                "x",
            ],
            ["--runs-dir"],
        ),
        "resume-missing": (["train", "--resume", tmp / "gone"], [tmp / "gone"]),
        "resume-file": (["train", "--resume", tmp / "a-file"], [tmp / "a-file"]),
        "resume-changes-lr": (["train", "--resume", run, "--lr", "0.5"], ["--lr"]),
        "resume-finished": (["train", "--resume", run], ["already finished"]),
        "show-unknown-dataset": (["show", "nosuchset", "--out", tmp / "g.png"], ["nosuchset"]),
        "show-grid": (["show", "digits", "--out", tmp / "g.png", "--grid", "0x-1"], ["grid"]),
    }


OPTION_CASES = [
    "evaluate-split",
    "evaluate-batch-zero",
    "evaluate-checkpoint",
    "evaluate-missing-run",
    "evaluate-file-as-run",
    "evaluate-empty-folder",
    "predict-top-k-zero",
    "predict-top-k-text",
    "export-format",
    "export-keras-suffix",
    "export-checkpoint",
    "plot-missing-run",
    "name-dotdot",
    "name-absolute",
    "name-nested",
    "name-hidden",
    "name-empty",
    "name-existing-run",
    "name-foreign-folder",
    "runs-dir-is-file",
    "resume-missing",
    "resume-file",
    "resume-changes-lr",
    "resume-finished",
    "show-unknown-dataset",
    "show-grid",
]


@pytest.fixture
def image(tmp_path):
    from PIL import Image

    path = tmp_path / "img" / "digit.png"
    path.parent.mkdir()
    Image.new("L", (28, 28), 255).save(path)
    return path


@pytest.mark.parametrize("case", OPTION_CASES)
def test_bad_options(tiny_run, tmp_path, image, clean_error, case):
    args, needles = _options(tiny_run.path, tmp_path, image)[case]
    clean_error(args, needles, protect=[tiny_run.path, tmp_path])
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "abs").exists()


# ----------------------------------------------------------------------------- output paths (findings 1 and 2)


def _outputs(run: Path, tmp: Path) -> dict[str, tuple[list, list]]:
    (tmp / "notes.txt").write_text("my notes\n")
    (tmp / "notes.keras").write_text("not a model\n")
    (tmp / "picture.png").write_text("not a png\n")
    (tmp / "folder.keras").mkdir()
    (tmp / "busy").mkdir()
    (tmp / "busy" / "thesis.tex").write_text("\\documentclass{article}\n")
    os.mkfifo(tmp / "pipe.onnx")
    return {
        "keras-over-run-model": (["export", run, "--format", "keras", "--out", run / "model.keras"], ["model.keras"]),
        "keras-into-checkpoints": (
            ["export", run, "--format", "keras", "--out", run / "checkpoints" / "m.keras"],
            ["checkpoints"],
        ),
        "saved-model-over-run": (["export", run, "--format", "saved_model", "--out", run], ["run folder itself"]),
        "onnx-over-train-log": (["export", run, "--format", "onnx", "--out", run / "train.log"], ["train.log"]),
        "onnx-sidecar-over-config": (["export", run, "--format", "onnx", "--out", run / "config"], ["config.json"]),
        "onnx-into-tensorboard": (
            ["export", run, "--format", "onnx", "--out", run / "tensorboard" / "m.onnx"],
            ["tensorboard"],
        ),
        "saved-model-over-file": (
            ["export", run, "--format", "saved_model", "--out", tmp / "notes.txt"],
            ["notes.txt", "--force"],
        ),
        "saved-model-over-foreign-folder": (
            ["export", run, "--format", "saved_model", "--out", tmp / "busy"],
            ["busy", "--force"],
        ),
        "keras-over-text": (
            ["export", run, "--format", "keras", "--out", tmp / "notes.keras"],
            ["notes.keras", "--force"],
        ),
        "keras-over-folder": (["export", run, "--format", "keras", "--out", tmp / "folder.keras"], ["folder.keras"]),
        "keras-under-file": (
            ["export", run, "--format", "keras", "--out", tmp / "notes.txt" / "m.keras"],
            ["notes.txt"],
        ),
        "onnx-over-fifo": (["export", run, "--format", "onnx", "--out", tmp / "pipe.onnx"], ["pipe.onnx", "FIFO"]),
        "show-over-text": (["show", "digits", "--out", tmp / "picture.png"], ["picture.png", "--force"]),
        "show-over-folder": (["show", "digits", "--out", tmp / "busy"], ["busy"]),
        "show-into-run-plots": (["show", "digits", "--out", run / "plots" / "grid.png"], ["plots"]),
        "show-over-run-history": (["show", "digits", "--out", run / "history.csv"], ["history.csv"]),
        "results-over-config": (["results", "--runs-dir", run.parent, "--out", run / "config.json"], ["config.json"]),
        "results-over-device": (["results", "--runs-dir", run.parent, "--out", "/dev/null"], ["/dev/null"]),
        "results-under-file": (
            ["results", "--runs-dir", run.parent, "--out", tmp / "notes.txt" / "r.md"],
            ["notes.txt"],
        ),
    }


OUTPUT_CASES = sorted(
    [
        "keras-over-run-model",
        "keras-into-checkpoints",
        "saved-model-over-run",
        "onnx-over-train-log",
        "onnx-sidecar-over-config",
        "onnx-into-tensorboard",
        "saved-model-over-file",
        "saved-model-over-foreign-folder",
        "keras-over-text",
        "keras-over-folder",
        "keras-under-file",
        "onnx-over-fifo",
        "show-over-text",
        "show-over-folder",
        "show-into-run-plots",
        "show-over-run-history",
        "results-over-config",
        "results-over-device",
        "results-under-file",
    ]
)


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_hostile_output_paths(run_copy, tmp_path, clean_error, case):
    work = tmp_path / "work"
    work.mkdir()
    args, needles = _outputs(run_copy, work)[case]
    clean_error(args, needles, protect=[run_copy, work])


def test_force_replaces_a_file_with_a_saved_model_folder(run_copy, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    code, out, err = call_cli(capsys, "export", run_copy, "--format", "saved_model", "--out", target, "--force")
    assert code == 0, err
    assert (target / "saved_model.pb").is_file()


def test_export_into_the_run_export_folder_twice(run_copy, capsys):
    """The default place (RUN/export/) is allowed, and an earlier export there is replaced."""
    for _ in range(2):
        code, out, err = call_cli(capsys, "export", run_copy, "--format", "keras")
        assert code == 0, err
    assert (run_copy / "export" / "model.keras").is_file()
    assert not no_temporaries(run_copy)


# ----------------------------------------------------------------------------- predict on hostile files


def _predict_inputs(tmp: Path) -> dict[str, Path]:
    from tests.reliability.test_fuzz_data import _jpeg_truncated, _png_header

    files = tmp / "in"
    files.mkdir()
    (files / "text.png").write_text("not an image\n")
    (files / "empty.png").write_bytes(b"")
    (files / "trunc.jpg").write_bytes(_jpeg_truncated())
    (files / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    (files / "zero.png").write_bytes(_png_header(0, 5))
    os.mkfifo(files / "pipe.png")
    (files / "dev.png").symlink_to("/dev/zero")
    (files / "broken.png").symlink_to(files / "nothing.png")
    (files / "dir.png").mkdir()
    (files / "no-images").mkdir()
    (files / "no-images" / "readme.txt").write_text("hi\n")
    return {
        name: files / name
        for name in (
            "text.png",
            "empty.png",
            "trunc.jpg",
            "bomb.png",
            "zero.png",
            "pipe.png",
            "dev.png",
            "broken.png",
            "dir.png",
            "no-images",
            "missing.png",
        )
    }


PREDICT_CASES = [
    "text.png",
    "empty.png",
    "trunc.jpg",
    "bomb.png",
    "zero.png",
    "pipe.png",
    "dev.png",
    "broken.png",
    "dir.png",
    "no-images",
    "missing.png",
]


@pytest.mark.parametrize("case", PREDICT_CASES)
def test_predict_hostile_files(tiny_run, tmp_path, clean_error, case):
    path = _predict_inputs(tmp_path)[case]
    clean_error(["predict", tiny_run.path, path], [path], protect=[tiny_run.path, tmp_path])


# ----------------------------------------------------------------------------- operating-system faults (finding 6)

FAULTS = {
    "ENOSPC": "no space left on device",
    "EROFS": "read-only file system",
    "EFBIG": "file too large",
    "EDQUOT": "disk quota exceeded",
    "EACCES": "permission denied",
}


def _fault_commands(run: Path, tmp: Path) -> dict[str, list]:
    return {
        "export": ["export", run, "--format", "keras", "--out", tmp / "m.keras"],
        "evaluate": ["evaluate", run],
        "plot": ["plot", run],
        "results": ["results", "--runs-dir", run.parent, "--out", tmp / "results.md"],
        "show": ["show", "digits", "--out", tmp / "grid.png"],
    }


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("command", ["export", "evaluate", "plot", "results", "show"])
def test_write_faults(run_copy, tmp_path, clean_error, monkeypatch, fault, command):
    """The final rename of every atomic write fails as the disk would; one line, nothing half-written."""
    import cnnlab.io

    code = getattr(errno, fault)

    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code), os.fspath(dst))

    monkeypatch.setattr(cnnlab.io.os, "replace", failing_replace)
    work = tmp_path / "work"
    work.mkdir()
    clean_error(_fault_commands(run_copy, work)[command], [FAULTS[fault]], protect=[run_copy, work])


@pytest.mark.parametrize("command", ["export", "results"])
def test_real_file_size_limit(run_copy, tmp_path, clean_error, command):
    """A real RLIMIT_FSIZE: the kernel refuses the write (EFBIG); Python ignores SIGXFSZ."""
    work = tmp_path / "work"
    work.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))
    try:
        line = clean_error(_fault_commands(run_copy, work)[command], ["file too large"], protect=[run_copy, work])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(work) in line


def test_full_disk_during_training_leaves_the_run_resumable(run_copy, capsys, monkeypatch):
    """ENOSPC while a resumed run writes its checkpoint: one line; the next resume finishes the run."""
    import cnnlab.training.checkpoints as ckpt
    from cnnlab.training import Run

    before = snapshot(run_copy / "config.json", run_copy / "model.keras")

    def no_space(file, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device", os.fspath(file))

    monkeypatch.setattr(ckpt.np, "savez", no_space)
    code, out, err = call_cli(capsys, "train", "--resume", run_copy, "--steps", "12", "-q")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "no space left on device" in lines[0], err
    assert not unchanged(before, snapshot(run_copy / "config.json", run_copy / "model.keras"))
    monkeypatch.undo()
    code, out, err = call_cli(capsys, "train", "--resume", run_copy, "--steps", "12", "-q")
    assert code == 0, err
    run = Run.load(run_copy)
    assert run.finished and run.metrics["steps"] == 12
    assert not no_temporaries(run_copy)


def test_warnings_do_not_leak_around_an_error(run_copy, capsys, monkeypatch):
    """Finding 11: a NumPy or Pillow warning raised on the way to an error stays off stderr; the line stands alone.

    After a success the same warnings are shown: they are held back, not thrown away.
    """
    import warnings

    import cnnlab.training.run as run_module

    real_read_json = run_module.read_json

    def noisy_read_json(path):
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=2)
        warnings.warn("Image size (100000000 pixels) exceeds limit", UserWarning, stacklevel=2)
        return real_read_json(path)

    monkeypatch.setattr(run_module, "read_json", noisy_read_json)
    # both shown (to pytest's recorders) after a success
    with pytest.warns(RuntimeWarning, match="overflow encountered"), pytest.warns(UserWarning, match="exceeds limit"):
        code, out, err = call_cli(capsys, "plot", run_copy)
    assert code == 0, err
    (run_copy / "config.json").write_text("{")
    code, out, err = call_cli(capsys, "evaluate", run_copy)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Warning" not in err and "overflow" not in err


def test_extreme_preprocessing_statistics_are_refused(run_copy, clean_error):
    import json

    from cnnlab.io import atomic_write_json

    config = run_copy / "config.json"
    document = json.loads(config.read_text())
    document["preprocessing"].update(normalize="standardize", mean=[1e308], std=[1e-320])
    atomic_write_json(config, document)
    clean_error(["evaluate", run_copy], [config, "preprocessing.mean"], protect=[run_copy])
