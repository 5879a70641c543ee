"""Options, recipes and their errors: checked before any framework loads."""

from __future__ import annotations

import pytest

from cnnlab.errors import ConfigError
from cnnlab.training.config import TrainConfig, list_recipes, load_recipe, resolve_config
from tests.conftest import assert_clean_error, run_cli

REFERENCE_RECIPES = {"softmax-mnist", "lenet5-mnist", "mnist-cnn", "cifar-cnn", "vgg-bn-cifar10"}


def test_every_reference_recipe_is_present_and_valid():
    assert REFERENCE_RECIPES <= set(list_recipes())
    for name in REFERENCE_RECIPES:
        config = resolve_config(recipe=name)
        reference = load_recipe(name)["reference"]
        assert 0 < reference["target"] <= reference["accuracy"] < 1, name
        assert config.recipe == name and config.model and config.dataset


def test_recipes_match_the_seeds_budgets():
    lenet = resolve_config(recipe="lenet5-mnist")
    assert (lenet.optimizer, lenet.lr, lenet.batch_size, lenet.steps, lenet.pad, lenet.validate_every) == (
        "adam",
        1e-3,
        100,
        20000,
        2,
        50,
    )
    softmax = resolve_config(recipe="softmax-mnist")
    assert (softmax.optimizer, softmax.lr, softmax.batch_size, softmax.steps) == ("sgd", 0.5, 100, 1000)
    assert softmax.model_options == {"kernel_initializer": "zeros"}
    cifar = resolve_config(recipe="cifar-cnn")
    assert (cifar.optimizer, cifar.lr, cifar.rho, cifar.batch_size, cifar.epochs) == ("rmsprop", 1e-3, 0.9, 128, 50)
    vgg = resolve_config(recipe="vgg-bn-cifar10")
    assert (vgg.early_stopping, vgg.monitor, vgg.val_split, vgg.batch_size) == (5, "val_loss", "first:10%", 64)
    assert vgg.augmentation == {"shift": 0.2, "zoom": 0.2, "flip": True, "fill": "nearest"}


def test_overrides_win_over_the_recipe_and_dataset_is_overridable():
    config = resolve_config(recipe="cifar-cnn", dataset="cifar10", lr="0.01", epochs="2")
    assert (config.dataset, config.lr, config.epochs, config.rho) == ("cifar10", 0.01, 2, 0.9)


def test_table_options_change_the_recipes_keys_and_keep_the_others():
    # --model-option bn_momentum=0.4 on a narrow recipe must not silently build the wide default
    config = resolve_config(recipe="fast-fashion-mnist", model_options={"bn_momentum": 0.4})
    assert config.model_options == {"widths": [16, 32, 64], "activation": "relu", "bn_momentum": 0.4}
    config = resolve_config(recipe="fast-cifar10", model_options={"width": 32}, augmentation={"flip": "alternate"})
    assert config.model_options == {"width": 32}
    assert config.augmentation == {"flip": "alternate", "crop_padding": 4}
    assert resolve_config(recipe="fast-cifar10", augmentation={}).augmentation == {}  # --augment none


def test_another_model_on_a_recipe_starts_from_its_own_builder_defaults():
    # fast-mnist's dropout belongs to mnist_cnn; lenet5 has no such option
    config = resolve_config(recipe="fast-mnist", model="lenet5")
    assert (config.model, config.model_options, config.lr) == ("lenet5", {}, 0.008)
    config = resolve_config(recipe="fast-mnist", model="airbench", model_options={"widths": [8, 16, 32]})
    assert config.model_options == {"widths": [8, 16, 32]}
    assert resolve_config(recipe="fast-mnist", model="mnist_cnn").model_options == {
        "dropout": 0.25,
        "filters": [16, 32],
        "units": 256,
    }


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"lr": "abc"}, "--lr: expected a positive number, got 'abc'"),
        ({"lr": -1}, "--lr"),
        ({"batch_size": 1.5}, "--batch-size"),
        ({"optimizer": "adagrad"}, "--optimizer"),
        ({"nesterov": "maybe"}, "--nesterov"),
        ({"epochs": 0, "steps": 0}, "--epochs / --steps"),
        ({"bogus": 1}, "unknown option --bogus"),
        ({"schedule": "step"}, "--decay-every"),
        ({"augmentation": {"twist": 1}}, "--augment: unknown key 'twist'"),
        ({"tta": "rotate"}, "--tta: expected one of none, flip, flip-translate"),
        ({"tta": "flip", "level": "scratch"}, "--tta: test-time augmentation needs --level keras"),
        ({"split_batch": -1}, "--split-batch"),
        ({"split_batch": 3, "batch_size": 100}, "--split-batch: a batch of 100 does not split into 3 equal parts"),
        ({"split_batch": 2, "level": "lowlevel"}, "--split-batch: splitting batches across cores needs --level keras"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_option(options, needle):
    options = {"epochs": 1, **options}
    with pytest.raises(ConfigError) as info:
        resolve_config(model="lenet5", dataset="mnist", **options)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: .*lenet5-mnist"):
        resolve_config(recipe="no-such-recipe")


def test_config_round_trips_through_its_dict():
    config = resolve_config(recipe="vgg-bn-cifar10", seed=7)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path):
    cases = [
        (["--model", "lenet5", "--dataset", "mnist", "--epochs", "1", "--lr", "abc"], ["--lr", "abc"]),
        (["--recipe", "no-such-recipe"], ["unknown recipe", "lenet5-mnist"]),
        (["--recipe", "softmax-mnist", "--batch-size", "ten"], ["--batch-size", "ten"]),
        (["--resume", str(tmp_path)], [str(tmp_path), "not a cnnlab run"]),
    ]
    for args, needles in cases:
        proc = run_cli("train", "--runs-dir", tmp_path / "runs", *args)
        assert_clean_error(proc, *needles)
    assert not (tmp_path / "runs").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_model_or_augmentation_values_leave_no_run_folder(tmp_path, data_dir):
    from cnnlab.errors import ModelError
    from cnnlab.training import train

    runs = tmp_path / "runs"
    proc = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--runs-dir",
        runs,
        "--augment",
        "shift=5",
        env={"CNNLAB_DATA_DIR": str(data_dir)},
    )
    assert_clean_error(proc, "--augment", "shift")
    with pytest.raises(ModelError, match="bogus"):
        train(
            model="softmax",
            dataset="mnist",
            epochs=1,
            runs_dir=runs,
            model_options={"bogus": 1},
            data_dir=data_dir,
            verbose=False,
        )
    assert not runs.exists()


def test_recipes_command_lists_every_recipe_with_its_figures():
    proc = run_cli("recipes")
    assert proc.returncode == 0, proc.stderr
    for name in list_recipes():
        assert name in proc.stdout
    assert "fast-mnist" in proc.stdout and "target 99.00%" in proc.stdout  # a recipe with a target only


@pytest.mark.slow
def test_the_wheel_ships_the_recipes(tmp_path):
    """A wheel install (no checkout beside it) must still find every recipe."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"  # a copy, so the build leaves no build/ folder in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, source / name)
    shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel offline here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("cnnlab-*.whl")
    shipped = {Path(n).stem for n in zipfile.ZipFile(wheel).namelist() if n.startswith("cnnlab/recipes/")}
    assert shipped == set(list_recipes())
