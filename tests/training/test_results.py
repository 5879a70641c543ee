"""``cnnlab results``: docs/results.md from run folders, every figure read from a run."""

from __future__ import annotations

import shutil

from tests.conftest import require_data, run_cli

TINY = """
description = "a tiny recipe for the results table"
model = "softmax"
dataset = "mnist"
val_split = 300
max_train_samples = 600
max_eval_samples = 300
optimizer = "sgd"
lr = 0.5
batch_size = 50
steps = 12

[reference]
accuracy = 0.9
target = 0.5
source = "made up for this test"
"""


def test_results_table_counts_faithful_runs_and_lists_the_others(tmp_path, monkeypatch):
    data = require_data("mnist", "train-images-idx3-ubyte.gz").parents[1]
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny.toml").write_text(TINY)
    monkeypatch.setenv("CNNLAB_RECIPES_DIR", str(recipes))
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data))
    from cnnlab.training import train
    from cnnlab.training.results import results_markdown

    runs = tmp_path / "runs"
    accuracies = [
        train(recipe="tiny", seed=seed, runs_dir=runs, name=f"tiny-{seed}", verbose=False).metrics["accuracy"]
        for seed in (0, 1)
    ]
    train(recipe="tiny", lr=0.1, runs_dir=runs, name="tiny-lr", verbose=False)
    shutil.copytree(runs / "tiny-0", runs / "tiny-cut")
    (runs / "tiny-cut" / "metrics.json").unlink()
    (runs / "tiny-cut" / "model.keras").unlink()
    shutil.copytree(runs / "tiny-1", runs / "tiny-damaged")
    (runs / "tiny-damaged" / "config.json").write_text('{"train": ')  # cut short
    (runs / "notes").mkdir()  # not a run folder: passed over without a word
    (runs / "notes" / "todo.txt").write_text("x")

    text = results_markdown(runs)
    row = next(line for line in text.splitlines() if line.startswith("| tiny |"))
    mean = sum(accuracies) / 2
    assert f"{mean:.2%}" in row and "| 0, 1 |" in row and "| 7,850 |" in row and "90.00%" in row
    assert ("| yes |" if mean >= 0.5 else "| no |") in row
    assert "`tiny-lr` modified (lr)" in text
    assert "`tiny-cut` unfinished: 1 epochs, step 12 of 12" in text
    damaged = [line for line in text.splitlines() if "tiny-damaged" in line]
    assert len(damaged) == 1 and "config.json" in damaged[0], damaged
    assert "notes" not in text

    out = tmp_path / "results.md"
    proc = run_cli("results", "--runs-dir", runs, "--out", out, env={"CNNLAB_RECIPES_DIR": str(recipes)})
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == text
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "tiny-damaged" in warnings[0] and "not counted" in warnings[0], proc.stderr


def test_a_run_from_before_the_precision_option_counts_as_float32():
    """config.json files written before --precision existed trained in float32, as the recipes pin."""
    from types import SimpleNamespace

    from cnnlab.training.config import TrainConfig, apply_options, load_recipe
    from cnnlab.training.results import changed_options

    recipe = load_recipe("lenet5-mnist")
    assert recipe["precision"] == "float32"
    train = apply_options(TrainConfig(), {k: v for k, v in recipe.items()}).to_dict()
    del train["precision"]
    assert changed_options(SimpleNamespace(config={"train": train}), recipe) == []
    train["precision"] = "mixed_bfloat16"
    assert changed_options(SimpleNamespace(config={"train": train}), recipe) == ["precision"]
