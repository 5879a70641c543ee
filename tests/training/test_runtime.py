"""The runtime resolved once (:mod:`cnnlab.runtime`): one pure function over one machine description."""

from __future__ import annotations

import json

import pytest

from cnnlab.runtime import Machine, resolve_runtime
from cnnlab.training.config import TrainConfig
from tests.conftest import assert_clean_error, require_data, run_cli

ZEN4 = Machine(cores=2, cpu_flags=frozenset({"avx512f", "avx512_bf16"}))
OLD_CPU = Machine(cores=4, cpu_flags=frozenset({"avx2"}))
GPU = Machine(cores=8, accelerators=("/physical_device:GPU:0",))


@pytest.mark.parametrize(
    "machine, changes, precision",
    [
        (ZEN4, {}, "mixed_bfloat16"),
        (OLD_CPU, {}, "float32"),
        (GPU, {}, "mixed_float16"),
        (GPU, {"backend": "jax"}, "mixed_float16"),
        (ZEN4, {"backend": "jax"}, "float32"),  # bf16 on CPUs: measured only for TensorFlow's oneDNN kernels
        (ZEN4, {"level": "scratch"}, "float32"),
        (ZEN4, {"precision": "float32"}, "float32"),  # explicit: kept
    ],
)
def test_precision_auto(machine, changes, precision):
    config = TrainConfig(model="lenet5", dataset="mnist", batch_size=100, backend="tensorflow")
    for key, value in changes.items():
        setattr(config, key, value)
    assert resolve_runtime(config, machine).precision == precision


def test_thread_layout_follows_the_split():
    config = TrainConfig(model="lenet5", dataset="mnist", batch_size=100, backend="tensorflow")
    split = resolve_runtime(config, ZEN4)
    assert (split.split_batch, split.intra_op, split.inter_op) == (2, 1, 2)
    config.model = "fastnet"  # batch norm: whole batches, every core on each op
    whole = resolve_runtime(config, ZEN4)
    assert (whole.split_batch, whole.intra_op, whole.inter_op) == (1, 2, 1)
    config.backend = "torch"
    assert (resolve_runtime(config, ZEN4).intra_op, resolve_runtime(config, ZEN4).inter_op) == (0, 0)


def test_a_resolved_runtime_resolves_to_itself():
    """Resume re-resolves from the recorded values: the same answer on any machine."""
    config = TrainConfig(model="lenet5", dataset="mnist", batch_size=100, backend="tensorflow")
    first = resolve_runtime(config, ZEN4)
    config.precision, config.split_batch = first.precision, first.split_batch
    for machine in (ZEN4, OLD_CPU, GPU):
        again = resolve_runtime(config, machine)
        assert (again.precision, again.split_batch) == (first.precision, first.split_batch)


def test_the_run_records_its_runtime_and_resume_refuses_another_backend(tmp_path):
    data = require_data("mnist")
    env = {"CNNLAB_DATA_DIR": str(data.parent)}
    proc = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        "mnist",
        "--steps",
        "2",
        "--batch-size",
        "32",
        "--max-train-samples",
        "64",
        "--max-eval-samples",
        "32",
        "--runs-dir",
        tmp_path,
        "--name",
        "r",
        "-q",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    runtime = config["runtime"]
    assert runtime["backend"] == config["train"]["backend"] == "tensorflow"
    assert runtime["precision"] == config["train"]["precision"] != "auto"
    assert runtime["split_batch"] == config["train"]["split_batch"] >= 1
    proc = run_cli("--backend", "jax", "train", "--resume", tmp_path / "r", "--steps", "4", env=env)
    assert_clean_error(proc, "--backend", "tensorflow")
