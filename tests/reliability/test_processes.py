"""Real processes: ``kill -9`` at several points of a run's life, and two writers on one run folder.

These are the only cases of the suite that start their own ``cnnlab`` processes (a few seconds
each for TensorFlow's import): a kill and a race need separate processes. The recovery after
each kill runs in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import call_cli, no_temporaries

TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--batch-size",
    "32",
    "--val-split",
    "100",
    "--max-train-samples",
    "300",
    "--max-eval-samples",
    "100",
    "--seed",
    "0",
    "-q",
]


def _start(args: list, **popen) -> subprocess.Popen:
    env = {**os.environ, "CNNLAB_THREADS": "1", "KERAS_BACKEND": "tensorflow"}
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *map(str, args)], env=env, **popen)


def _kill_when(process: subprocess.Popen, condition, timeout: float = 300) -> bool:
    """SIGKILL ``process`` the moment ``condition()`` holds; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.001)
    process.kill()
    process.wait()
    raise AssertionError("the condition never held")


def _temporary_model(folder: Path) -> bool:
    try:
        return any(name.startswith(".model.keras.tmp-") for name in os.listdir(folder))
    except FileNotFoundError:
        return False


# ----------------------------------------------------------------------------- kill -9 during folder creation

KILL_POINTS = {
    "folder-appears": lambda run: run.is_dir(),
    "log-appears": lambda run: (run / "train.log").exists(),
    "config-appears": lambda run: (run / "config.json").exists(),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_9_during_folder_creation_never_dead_ends(tmp_path, capsys, point):
    """Finding 4: whatever instant the kill hits, the folder is resumable or reported and replaceable."""
    from cnnlab.training import Run

    run = tmp_path / "runs" / "k"
    args = [*TRAIN, "--model", "softmax", "--steps", "40", "--runs-dir", tmp_path / "runs", "--name", "k"]
    process = _start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = _kill_when(process, lambda: KILL_POINTS[point](run))
    if killed and not (run / "config.json").exists():
        code, out, err = call_cli(capsys, "train", "--resume", run)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "incomplete run folder" in err, err
        code, out, err = call_cli(capsys, *args)  # the same command again replaces the incomplete folder
    else:
        code, out, err = call_cli(capsys, "train", "--resume", run, "-q")
        if code == 2 and "already finished" in err:  # the process ended before the kill landed
            code = 0
    assert code == 0, err
    assert Run.load(run).finished
    assert not no_temporaries(run)


@pytest.mark.parametrize("config_write", [False, True])
def test_incomplete_folder_left_by_a_kill_is_replaced(tmp_path, capsys, config_write):
    """The exact leftovers of finding 4: train.log, tensorboard/, a dead holder's lock, no config.json (and,
    killed during config.json's own atomic write, its temporary file)."""
    from cnnlab.training import Run

    run = tmp_path / "runs" / "k"
    (run / "tensorboard").mkdir(parents=True)
    (run / "train.log").write_text("")
    (run / ".lock").write_text("999999999 elsewhere\n")
    if config_write:
        (run / ".config.json.tmp-abc123.json").write_text('{"train": {')
    code, out, err = call_cli(capsys, "evaluate", run)
    assert code == 2 and "incomplete run folder" in err and err.count("\n") == 1, err
    code, out, err = call_cli(
        capsys, *TRAIN, "--model", "softmax", "--steps", "4", "--runs-dir", run.parent, "--name", "k"
    )
    assert code == 0, err
    assert Run.load(run).finished and (run / ".lock").read_text() == ""


# ----------------------------------------------------------------------------- kill -9 during the final model write


def test_kill_9_during_final_model_write_leaves_no_temporary_for_good(tmp_path, capsys):
    """Finding 11: the temporary .model.keras file a kill leaves is removed by the next resume."""
    from cnnlab.training import Run

    run = tmp_path / "runs" / "final"
    # mnist_cnn's 3.3 M parameters make model.keras 13 MB: its write lasts long enough to be hit.
    args = [*TRAIN, "--model", "mnist_cnn", "--steps", "3", "--runs-dir", tmp_path / "runs", "--name", "final"]
    for _ in range(3):
        process = _start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _kill_when(process, lambda: _temporary_model(run)):
            break
        import shutil

        shutil.rmtree(run)  # finished before the kill could land: try again
    else:
        pytest.fail("the final model write was never caught in three runs")
    assert _temporary_model(run) and not (run / "model.keras").exists()
    Run.load(run).model("latest")  # the run is readable right after the kill
    code, out, err = call_cli(capsys, "train", "--resume", run, "-q")
    assert code == 0, err
    assert not no_temporaries(run), no_temporaries(run)
    assert Run.load(run).finished


# ----------------------------------------------------------------------------- two writers on one run folder


def test_a_second_writer_fails_at_once(run_copy, capsys):
    """Finding 3: while a writer holds the lock, another gets one line naming the holder, at once."""
    from cnnlab.training.run import lock_run_folder

    before = (run_copy / "checkpoints" / "latest.json").read_bytes()
    with lock_run_folder(run_copy):
        started = time.monotonic()
        code, out, err = call_cli(capsys, "train", "--resume", run_copy, "--steps", "20")
        waited = time.monotonic() - started
    assert code == 2 and err.count("\n") == 1 and "in use by another cnnlab training" in err, err
    assert f"pid {os.getpid()}" in err
    assert waited < 10  # refused before the data is loaded or the model built
    assert (run_copy / "checkpoints" / "latest.json").read_bytes() == before


def test_a_dead_holders_lock_is_taken_over(run_copy, capsys):
    holder = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_copy / ".lock").write_text(f"{holder.stdout.strip()} {os.uname().nodename}\n")  # that pid is gone now
    code, out, err = call_cli(capsys, "train", "--resume", run_copy, "--steps", "8", "-q")
    assert code == 0, err
    assert (run_copy / ".lock").read_text() == ""


def test_two_trainings_with_one_name_and_two_resumes_of_one_run(tmp_path):
    """Finding 3 with real processes: one writer wins, the other fails with one line; the folder is one run's."""
    from cnnlab.training import Run

    runs = tmp_path / "runs"
    args = [*TRAIN, "--model", "softmax", "--steps", "300", "--runs-dir", runs, "--name", "same"]
    for steps, round_args in ((300, args), (600, ["train", "--resume", runs / "same", "--steps", "600", "-q"])):
        processes = [_start(round_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=600) + (p.returncode,) for p in processes]
        codes = sorted(code for _, _, code in results)
        assert codes == [0, 2], results
        loser = next(err for _, err, code in results if code == 2)
        lines = loser.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), loser
        assert "in use by another cnnlab training" in lines[0] or "already" in lines[0], loser
        run = Run.load(runs / "same")
        assert run.finished and run.metrics["steps"] == run.progress()["step"] == steps
        assert not no_temporaries(run.path) and (run.path / ".lock").read_text() == ""
