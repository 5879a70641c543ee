"""Data-parallel training across real processes on 127.0.0.1 (JAX on CPU, gloo collectives).

One small MNIST slice, the softmax classifier (no dropout), no augmentation, 50 steps at a global batch of 128:
two processes give the weights one process gives; a killed process makes the other stop with a
one-line message; the run resumed from its last checkpoint ends exactly as the uninterrupted
distributed run; only process 0 writes. Each process uses one thread, so two fit the CI's cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import ConfigError
from cnnlab.runtime import resolve_cluster
from tests.conftest import REPO, require_data

pytest.importorskip("jax", reason="distributed training needs JAX: pip install 'cnnlab[jax]'")
pytestmark = [pytest.mark.jax]

STEPS = 50
TRAIN = [
    "--backend",
    "jax",
    "train",
    "--model",
    "softmax",
    "--dataset",
    "mnist",
    "--max-train-samples",
    "6400",
    "--max-eval-samples",
    "256",
    "--batch-size",
    "128",
    "--steps",
    str(STEPS),
    "--checkpoint-every",
    "5",
    "--seed",
    "3",
    "--runs-dir",
    "runs",
]
HEARTBEAT = 15  # seconds (the default is 30): the test checks the mechanism, and its bound, sooner


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO / "src"),
        KERAS_BACKEND="jax",
        CNNLAB_THREADS="1",
        PYTHONUNBUFFERED="1",
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        CNNLAB_HEARTBEAT_TIMEOUT=str(HEARTBEAT),
        CNNLAB_CONNECT_TIMEOUT="120",
    )
    for key in ("CNNLAB_COORDINATOR", "CNNLAB_NUM_PROCESSES", "CNNLAB_PROCESS_ID"):
        env.pop(key, None)
    env.update(extra)
    return env


def _start(args, cwd: Path, **env) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        cwd=cwd,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pair(args, cwds, port):
    return [
        _start(args, cwd, CNNLAB_COORDINATOR=f"127.0.0.1:{port}", CNNLAB_NUM_PROCESSES="2", CNNLAB_PROCESS_ID=str(rank))
        for rank, cwd in enumerate(cwds)
    ]


def _weights(run: Path) -> list[np.ndarray]:
    from cnnlab.training.checkpoints import load_state_arrays

    _, arrays = load_state_arrays(run, "latest")
    return [arrays[k] for k in sorted(arrays) if k.startswith("model/")]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, and two processes (each in its own folder), on the same data and options."""
    require_data("mnist", "train-images-idx3-ubyte.gz")
    from cnnlab.distributed import free_port

    root = tmp_path_factory.mktemp("distributed")
    single = _start([*TRAIN, "--name", "single"], root / "single")
    pair = _pair([*TRAIN, "--distributed", "--name", "pair"], [root / "rank0", root / "rank1"], free_port())
    outputs = [p.communicate(timeout=300) for p in [single, *pair]]
    for process, (_out, err) in zip([single, *pair], outputs):
        assert process.returncode == 0, err[-3000:]
    return root


@pytest.mark.slow
def test_two_processes_give_the_weights_of_one(runs):
    one, two = _weights(runs / "single/runs/single"), _weights(runs / "rank0/runs/pair")
    assert len(one) == len(two) > 0
    for a, b in zip(one, two):
        assert a.shape == b.shape
        relative = np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(a.astype(np.float64)), 1e-12)
        assert relative <= 1e-5, relative
    m1, m2 = _metrics(runs / "single/runs/single"), _metrics(runs / "rank0/runs/pair")
    assert m1["steps"] == m2["steps"] == STEPS
    assert m2["loss"] == pytest.approx(m1["loss"], rel=1e-4)


def test_only_process_0_writes_and_the_runtime_is_recorded(runs):
    assert not any((runs / "rank1").iterdir()), list((runs / "rank1").rglob("*"))
    run = runs / "rank0/runs/pair"
    assert {"config.json", "metrics.json", "model.keras", "history.csv"} <= {p.name for p in run.iterdir()}
    runtime = json.loads((run / "config.json").read_text())["runtime"]
    assert (runtime["processes"], runtime["devices"], runtime["process_id"]) == (2, 2, 0)
    assert json.loads((run / "config.json").read_text())["train"]["distributed"] is True


@pytest.mark.slow
def test_a_killed_process_stops_the_other_and_resume_matches(runs):
    from cnnlab.distributed import free_port
    from cnnlab.training.checkpoints import read_pointer

    shared = runs / "shared"
    first, second = _pair([*TRAIN, "--distributed", "--name", "killed"], [shared, shared], free_port())
    run = shared / "runs" / "killed"
    deadline = time.monotonic() + 240
    while (read_pointer(run, "latest") or {}).get("step", 0) < 10:  # mid-run, after a checkpoint
        assert first.poll() is None and second.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    second.send_signal(signal.SIGSTOP)  # from here on the run cannot finish: it needs process 1
    second.kill()
    killed_at = time.monotonic()
    _, err = first.communicate(timeout=120)
    waited = time.monotonic() - killed_at
    second.communicate()
    assert first.returncode != 0
    assert waited <= 60, waited
    lines = [line for line in err.splitlines() if "lost process" in line]
    assert len(lines) == 1 and "lost process 1" in lines[0], err[-3000:]
    assert "Check failure stack trace" not in err  # JAX's fatal log became that one line
    stopped_at = read_pointer(run, "latest")["step"]
    assert 10 <= stopped_at < STEPS

    launch = subprocess.run(
        [sys.executable, "-m", "cnnlab", "launch", "-n", "2", "--", "--backend", "jax", "train", "--resume", str(run)],
        cwd=shared,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
    assert f"[rank 0] resuming {run}" in launch.stdout
    assert _metrics(run)["loss"] == _metrics(runs / "rank0/runs/pair")["loss"]
    for a, b in zip(_weights(run), _weights(runs / "rank0/runs/pair")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_launch_names_the_failed_rank_and_a_batch_that_does_not_divide(tmp_path):
    require_data("mnist", "train-images-idx3-ubyte.gz")
    args = [a if a != "128" else "127" for a in TRAIN]
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "launch", "-n", "2", "--", *args, "--name", "odd"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "a global batch of 127 does not divide among 2 processes" in proc.stdout
    assert "cnnlab launch: rank" in proc.stderr and "exited with status 2" in proc.stderr


def test_distributed_needs_jax():
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "--backend", "tensorflow", *TRAIN[2:], "--distributed", "--name", "x"],
        env=_env(CNNLAB_COORDINATOR="127.0.0.1:1", CNNLAB_NUM_PROCESSES="2", CNNLAB_PROCESS_ID="1"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("cnnlab: error: --distributed: needs the JAX backend")
    assert "--backend jax" in proc.stderr


def test_cluster_from_flags_environment_and_slurm():
    assert resolve_cluster("h:1", 4, 3, environ={}).process_id == 3
    env = {"CNNLAB_COORDINATOR": "10.0.0.1:999", "CNNLAB_NUM_PROCESSES": "2", "CNNLAB_PROCESS_ID": "1"}
    assert resolve_cluster(environ=env) == resolve_cluster("10.0.0.1:999", 2, 1, environ={})
    slurm = {"SLURM_STEP_NODELIST": "gpu[03-05,07],cpu1", "SLURM_NTASKS": "8", "SLURM_PROCID": "5"}
    cluster = resolve_cluster(environ=slurm)
    assert (cluster.coordinator, cluster.processes, cluster.process_id) == ("gpu03:12355", 8, 5)
    with pytest.raises(ConfigError, match="--process-id: expected 0 to 1"):
        resolve_cluster("h:1", 2, 2, environ={})
    with pytest.raises(ConfigError, match="--coordinator: expected HOST:PORT"):
        resolve_cluster("nohost", 2, 0, environ={})
    with pytest.raises(ConfigError, match="--coordinator: a distributed run needs"):
        resolve_cluster(None, 2, 0, environ={})


def test_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "cnnlab", "launch", "-n", "2", "--port", str(port), "--", *TRAIN],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"cnnlab: error: --coordinator: port {port} is in use on this host (another "
        "program, or an earlier run still running); choose another port"
    )


def test_fatal_log_becomes_one_line():
    from cnnlab.distributed import summarize_fatal

    text = (
        "E1202 coordination_service.cc:1549] Use error polling ... UNAVAILABLE: The following tasks are "
        "unhealthy (stopped sending heartbeats):\n1\nThe tasks have crashed.\n"
    )
    assert "lost process 1 " in summarize_fatal(text, 0)
    leader = "Failed to send RPC to coordination service. Either the leader task was preempted/died"
    assert "lost process 0, the coordinator" in summarize_fatal(leader, 1)
