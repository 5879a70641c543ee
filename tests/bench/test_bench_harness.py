"""The benchmark harness on a tiny budget: FLOP counting, the matmul rate, one contender end to end.

No timing assertions: figures from a shared test machine mean nothing. What is checked is that
the harness measures, counts and reports what it says it does.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from cnnlab.bench.contenders import Contender, module_cmd, python_cmd
from cnnlab.bench.harness import alternate, task_args, training_flops
from cnnlab.bench.machine import machine_info, matmul_gflops
from cnnlab.bench.process import run_process
from cnnlab.bench.protocol import parse_result
from tests.conftest import assert_clean_error, run_cli


def conv_flops(out_h, out_w, out_c, k, in_c):
    """2 FLOPs per multiply-add over every output position, plus bias and ReLU (1 each per output)."""
    outputs = out_h * out_w * out_c
    return 2 * outputs * k * k * in_c + outputs + outputs


def pool_flops(out_h, out_w, c, size=2):
    """A max over a size x size window per output element: size^2 FLOPs (the counting convention)."""
    return out_h * out_w * c * size * size


def dense_flops(n_in, n_out, relu=True):
    """2 per multiply-add, plus the bias, plus the ReLU when there is one."""
    return 2 * n_in * n_out + n_out + (n_out if relu else 0)


def lenet5_hand_count() -> int:
    """LeNet-5 on 32x32x1 (tntrung's tutorial), layer by layer; 5x5 valid convolutions, 2x2/2 max pooling."""
    return (
        conv_flops(28, 28, 6, 5, 1)  # 32 - 5 + 1 = 28
        + pool_flops(14, 14, 6)
        + conv_flops(10, 10, 16, 5, 6)  # 14 - 5 + 1 = 10
        + pool_flops(5, 5, 16)
        + dense_flops(5 * 5 * 16, 120)  # flatten: 400 inputs
        + dense_flops(120, 84)
        + dense_flops(84, 10, relu=False)  # logits, no activation
    )


def test_lenet5_forward_flops_equal_hand_count():
    from cnnlab.models import count_flops, create_model

    model = create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)
    assert count_flops(model) == lenet5_hand_count()


@pytest.mark.slow
def test_training_flops_are_three_forward_passes():
    assert training_flops(["lenet5"]) == {"lenet5": 3 * lenet5_hand_count()}


def test_matmul_rate_is_a_positive_number():
    rate = matmul_gflops(n=256, repeats=3)
    assert math.isfinite(rate) and rate > 0


def test_machine_info_names_the_device_and_versions():
    info = machine_info()
    assert info["cores"] >= 1
    assert info["device"]  # "CPU" or the GPU names
    assert info["versions"]["numpy"]


def test_process_reports_its_own_peak_memory():
    # A child that allocates ~200 MB must report at least that much, whatever ran before it.
    code = "import numpy as np; a = np.ones(50_000_000, dtype=np.float32); print(a.sum())"
    result = run_process([python_cmd()[0], "-c", code], timeout=120)
    assert result.returncode == 0
    assert result.peak_rss_mb > 190


@pytest.mark.slow
def test_plain_torch_contender_reports_throughput_per_segment():
    contender = Contender("plain PyTorch", module_cmd("plain_torch"))
    [measurement] = alternate([contender], rounds=1, extra_args=task_args("lenet5", 2, 2, 1))
    assert measurement.errors == []
    [result] = measurement.results
    assert len(result["images_per_s"]) == 2 and all(r > 0 for r in result["images_per_s"])
    assert len(result["images_per_cpu_s"]) == 2
    assert measurement.median_rss_mb() > 0


@pytest.mark.slow
@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_plain_jax_contender_trains_lenet5_and_reports_throughput():
    contender = Contender("plain JAX", module_cmd("plain_jax"))
    [measurement] = alternate([contender], rounds=1, extra_args=task_args("lenet5", 2, 2, 1))
    assert measurement.errors == []
    [result] = measurement.results
    assert result["contender"] == "plain-jax" and result["backend"].startswith("jax ")
    assert len(result["images_per_s"]) == 2 and all(r > 0 for r in result["images_per_s"])


def test_a_contender_whose_framework_is_missing_is_reported_not_installed_and_not_run():
    contender = Contender("plain Nothing", python_cmd("-c", "raise SystemExit(3)"), requires="no_such_framework_here")
    lines: list[str] = []
    [measurement] = alternate([contender], rounds=2, log=lines.append)
    assert measurement.runs == [] and measurement.results == []
    assert measurement.errors == ["not installed (no_such_framework_here)"]
    assert any("not installed" in line for line in lines)


def test_throughput_table_compares_each_backend_with_its_own_framework(monkeypatch):
    from cnnlab.bench import harness
    from cnnlab.bench.protocol import Budget

    fake = {"plain Keras (TF)": (None, 100.0), "plain PyTorch": (None, 50.0), "plain JAX": (None, 80.0)}
    fake |= {"cnnlab torch": ("torch", 40.0), "cnnlab jax": ("jax", 120.0), "cnnlab tensorflow": ("tensorflow", 300.0)}

    def fake_alternate(contenders, rounds, extra_args=(), log=None):
        out = []
        for c in contenders:
            backend, rate = fake[c.label]
            m = harness.Measurement(c)
            m.results.append({"backend": backend, "images_per_s": [rate], "images_per_cpu_s": [rate]})
            out.append(m)
        return out

    monkeypatch.setattr(harness, "alternate", fake_alternate)
    keys = {"plain Keras (TF)": "plain-keras", "plain PyTorch": "plain-torch", "plain JAX": "plain-jax"}
    contenders = [Contender(label, ("true",), key=keys.get(label, "")) for label in fake]
    [table], _ = harness.throughput_section(
        ["lenet5"], Budget.quick(), float("nan"), {}, contenders_for=lambda model: contenders, log=lambda s: None
    )
    column = table.columns.index("vs its own framework")
    own = {row[0]: row[column] for row in table.rows}
    assert own == {
        "plain Keras (TF)": "",
        "plain PyTorch": "",
        "plain JAX": "",
        "cnnlab torch": "0.80x",
        "cnnlab jax": "1.50x",
        "cnnlab tensorflow": "3.00x",
    }


def test_parse_result_reads_the_last_result_line():
    out = 'noise\nCNNLAB_BENCH_RESULT {"a": 1}\nmore\nCNNLAB_BENCH_RESULT {"a": 2}\n'
    assert parse_result(out) == {"a": 2}
    assert parse_result("no result here") is None


@pytest.mark.slow
def test_cli_bench_writes_its_table(tmp_path):
    out = tmp_path / "benchmarks.md"
    proc = run_cli(
        "bench", "--quick", "--only", "throughput", "--model", "lenet5", "--contender", "cnnlab", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "cnnlab bench --quick --only throughput" in text  # the command that produced it
    assert "## Training throughput: lenet5, batch 100" in text
    row = next(line for line in text.splitlines() if line.startswith("| cnnlab default"))
    assert "failed" not in row
    assert "Device: **" in text and "GFLOP/s" in text
    if Path("/proc/stat").exists():  # Linux: the report says how much CPU the host took meanwhile
        assert "Host CPU steal during the run: " in text


def test_cli_bench_rejects_an_unknown_contender(tmp_path):
    proc = run_cli("bench", "--only", "throughput", "--contender", "numpy-by-hand", "--out", str(tmp_path / "x.md"))
    assert_clean_error(proc, "--contender", "numpy-by-hand")
    assert not (tmp_path / "x.md").exists()


def test_time_to_accuracy_tasks_name_recipes_that_resolve(tmp_path):
    from cnnlab.bench.tta import TASKS, tta_contenders
    from cnnlab.training.config import resolve_config

    for task in TASKS:
        for recipe in task.recipes:
            assert resolve_config(recipe=recipe).model  # the recipe file exists and validates
        labels = [c.label for c in tta_contenders(task, seed=0, runs_dir=tmp_path)]
        assert labels[0].startswith("plain Keras") and len(labels) == 1 + len(task.recipes) + bool(task.rival)
    (ninety,) = [t for t in TASKS if t.recipes == ("fast-cifar10-90",)]
    assert [c.label for c in tta_contenders(ninety, seed=0, runs_dir=tmp_path)][1] == "plain PyTorch airbench94"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the plain-PyTorch airbench94 needs PyTorch")
def test_airbench_row_races_the_plain_pytorch_script_against_the_whole_recipe():
    from cnnlab.bench.harness import throughput_contenders

    contenders = throughput_contenders("airbench")
    assert [c.key for c in contenders] == ["plain-torch", "cnnlab", "cnnlab-float32"]
    small = ("--batch-size", "32")  # the recipe's 1,024 would take minutes here
    measurements = alternate(contenders, rounds=1, extra_args=(*task_args("airbench", 2, 2, 2), *small))
    for m in measurements:
        assert m.errors == [], m.errors
        [result] = m.results
        assert len(result["images_per_s"]) == 2 and all(r > 0 for r in result["images_per_s"])
    plain, recipe, float32 = (m.results[0] for m in measurements)
    assert plain["contender"] == "plain-torch-airbench" and plain["backend"].startswith("torch ")
    # cnnlab's side ran the recipe's own loop and says what its "auto" precision resolved to
    assert recipe["recipe"] == "fast-cifar10-90" and recipe["precision"] in ("float32", "mixed_bfloat16")
    assert float32["precision"] == "float32"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the plain-PyTorch airbench94 needs PyTorch")
def test_plain_pytorch_airbench_reports_its_time_to_a_target_as_a_result_line():
    argv = module_cmd("plain_torch_airbench", "--epochs", "1", "--batch-size", "64", "--target", "0.05")
    run = run_process(list(argv), timeout=600)
    assert run.returncode == 0, run.stderr[-500:]
    result = parse_result(run.stdout)
    # ten random classes: about 10% right, above a 5% target after the one epoch
    assert result["test_accuracy"] >= 0.05 and result["seconds_to_target"] is not None
    assert 0 < result["seconds_to_target"] <= result["train_seconds"]


def test_unknown_tta_dataset_is_refused_before_any_work(tmp_path):
    proc = run_cli("bench", "--only", "tta", "--dataset", "imagenet", "--out", str(tmp_path / "x.md"))
    assert_clean_error(proc, "--dataset", "imagenet", "fashion_mnist")
    assert not (tmp_path / "x.md").exists()


def test_tta_tasks_are_selected_by_data_set_and_recipe():
    from cnnlab.bench.tta import select_tasks
    from cnnlab.errors import ConfigError

    cifar = select_tasks(datasets=["cifar10_jpg"])
    assert {t.target for t in cifar} == {0.80, 0.90}  # both CIFAR-10 tasks
    (fifteen_minutes,) = select_tasks(datasets=["cifar10_jpg"], recipes=["fast-cifar10"])
    assert fifteen_minutes.target == 0.80 and fifteen_minutes.recipes == ("fast-cifar10",)
    assert select_tasks(datasets=["mnist"], recipes=["fast-cifar10"]) == []
    with pytest.raises(ConfigError, match="--recipe: no time-to-accuracy task for 'fast-imagenet'"):
        select_tasks(recipes=["fast-imagenet"])


def test_time_to_accuracy_table_bounds_the_ratio_when_the_baseline_never_gets_there(monkeypatch, tmp_path):
    """The table logic on canned process results: a capped baseline that missed the target gives
    a lower bound on the speed-up, and --baseline-rounds runs it for the first seeds only."""
    import json
    from types import SimpleNamespace

    from cnnlab.bench import tta
    from cnnlab.bench.harness import Budget
    from cnnlab.bench.protocol import RESULT_PREFIX

    calls = []

    def fake_run_process(argv, env=None, timeout=None):
        plain = "cnnlab.bench.contenders.plain_keras" in argv
        calls.append("plain" if plain else "cnnlab")
        result = (
            {"seconds_to_target": None, "test_accuracy": 0.75, "train_seconds": 1800.0}
            if plain
            else {"seconds_to_target": 600.0, "test_accuracy": 0.81, "train_seconds": 600.0}
        )
        return SimpleNamespace(stdout=RESULT_PREFIX + json.dumps(result) + "\n", stderr="")

    monkeypatch.setattr(tta, "run_process", fake_run_process)
    task = tta.Task("cifar10_jpg", 0.80, "vgg_bn", ("fast-cifar10",), max_epochs=50, max_seconds=1800)
    (table,) = tta.tta_section(Budget(rounds=3, baseline_rounds=1), tasks=(task,), log=lambda *a: None)
    assert calls == ["plain", "cnnlab", "cnnlab", "cnnlab"]
    plain_row, cnnlab_row = table.rows
    assert plain_row[3] == "n/a" and plain_row[-1] == "n/a"
    assert cnnlab_row[3] == "600.0" and cnnlab_row[-1].startswith("> 3.0x faster")
    assert any("after 1800 s" in note for note in table.notes)
    assert any("first 1 seed" in note for note in table.notes)


def test_steal_fraction_reads_the_eighth_counter():
    from cnnlab.bench.machine import cpu_times, steal_fraction

    before = [100, 0, 10, 500, 0, 0, 0, 40, 0, 0]
    after = [200, 0, 20, 600, 0, 0, 0, 140, 0, 0]  # +100 user, +10 system, +100 idle, +100 steal
    assert steal_fraction(before, after) == 100 / 310
    assert steal_fraction(None, after) is None and steal_fraction(before, before) is None
    now = cpu_times()
    if now is not None:  # Linux
        assert len(now) >= 8 and all(v >= 0 for v in now)


def test_bench_help_names_every_contender_and_network():
    from cnnlab.bench.harness import CONTENDER_KEYS, NETWORKS

    proc = run_cli("bench", "--help", env={"COLUMNS": "400"})
    assert proc.returncode == 0
    for name in (*CONTENDER_KEYS, *NETWORKS):
        assert name in proc.stdout, name
