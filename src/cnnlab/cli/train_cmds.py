"""``cnnlab train``, ``cnnlab recipes`` and ``cnnlab results``.

``train`` is one call to :func:`cnnlab.training.train`. Its options are generated from one
table (:data:`TRAIN_OPTIONS`), all taken as text, so that a bad value is reported by the
config layer as one line naming the option (``--lr: expected a positive number, got 'abc'``)
rather than by the argument parser.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import List, Optional

import typer

# TrainConfig field -> (metavar, help). The CLI flag is the field with "-" for "_".
TRAIN_OPTIONS = {
    "model": ("NAME", "Model from `cnnlab models`."),
    "dataset": ("NAME", "Dataset from `cnnlab datasets` (mnist, cifar10_jpg, folder:PATH, ...)."),
    "val_split": ("SPEC", "Validation images taken from train: 0.1, 5000, first:10%, last:10000, none."),
    "max_train_samples": ("N", "Train on a fixed subset of N images (0 = all)."),
    "max_eval_samples": ("N", "Validate and test on N images (0 = all)."),
    "normalize": ("MODE", "unit, standardize, center or none."),
    "pad": ("PIXELS", "Zero padding around each image (LeNet-5 on MNIST: 2)."),
    "shuffle": ("BOOL", "Shuffle the training set each epoch (true/false)."),
    "drop_last": ("BOOL", "Drop the last partial batch of each epoch."),
    "optimizer": ("NAME", "sgd, adam, adamw or rmsprop."),
    "lr": ("RATE", "Learning rate (peak rate for cosine / one-cycle)."),
    "momentum": ("M", "Momentum (sgd, rmsprop)."),
    "nesterov": ("BOOL", "Nesterov momentum (sgd)."),
    "rho": ("RHO", "RMSProp decay of the squared-gradient average."),
    "weight_decay": ("WD", "Decoupled weight decay."),
    "label_smoothing": ("EPS", "Label smoothing in [0, 1)."),
    "schedule": ("NAME", "constant, step, cosine or one-cycle."),
    "warmup_steps": ("N", "Linear warm-up steps (any schedule)."),
    "decay_every": ("N", "step schedule: multiply the rate by --decay-rate every N steps."),
    "decay_rate": ("F", "step schedule factor."),
    "min_lr": ("RATE", "Final rate of cosine / one-cycle."),
    "batch_size": ("N", "Images per step."),
    "epochs": ("N", "Training budget in epochs."),
    "steps": ("N", "Training budget in optimizer steps (overrides --epochs)."),
    "validate_every": ("N", "Also validate every N steps (0 = per epoch only)."),
    "checkpoint_every": ("N", "Also checkpoint every N steps (0 = per epoch)."),
    "early_stopping": ("PATIENCE", "Stop after PATIENCE validations without improvement (0 = off)."),
    "monitor": ("METRIC", "val_loss, val_accuracy, loss or accuracy (best checkpoint, early stopping)."),
    "min_delta": ("D", "Smallest change counted as an improvement."),
    "restore_best": ("BOOL", "End with the best checkpoint's weights."),
    "seed": ("N", "Random seed: weights, batch order, augmentation, dropout."),
    "level": ("LEVEL", "keras, scratch or lowlevel."),
    "precision": ("POLICY", "auto, float32, mixed_bfloat16 or mixed_float16 (auto: bf16 where the hardware has it)."),
    "tta": ("MODE", "Test-time augmentation for validation and test: none, flip (average with the mirror image) "
                    "or flip-translate (also 1-pixel shifts; airbench's 6 views)."),
    "steps_per_execution": ("N", "Optimizer steps per compiled call (0 = auto)."),
    "split_batch": ("N", "Compute each batch as N equal parts at once, one per CPU core, and average their "
                         "gradients (0 = auto: the cores' count for TensorFlow on a CPU and networks without "
                         "batch norm, else 1)."),
}


def _train(recipe: Optional[str], resume: Optional[Path], name: Optional[str], runs_dir: Path,
           model_option: List[str], augment: Optional[str], quiet: bool, **options) -> None:
    """Train a model (or a recipe, or resume a run) and write a run folder."""
    from cnnlab.backend import requested_backend
    from cnnlab.training import train

    options = {k: v for k, v in options.items() if v is not None}
    if model_option:
        options["model_options"] = _key_values(model_option, "--model-option")
    if augment is not None:
        options["augmentation"] = {} if augment.strip().lower() in ("", "none") else _key_values(
            augment.split(","), "--augment")
    if resume is None:
        options["backend"] = requested_backend()  # --backend / $KERAS_BACKEND, recorded in the config
    run = train(recipe=recipe, resume=resume, name=name, runs_dir=runs_dir, verbose=not quiet, **options)
    typer.echo(f"run folder: {run.path}")


def _key_values(items, flag: str) -> dict:
    """``["a=1", "flip"]`` -> ``{"a": 1, "flip": True}``; values parsed as TOML scalars."""
    import tomllib

    from cnnlab.errors import ConfigError

    result = {}
    for item in items:
        key, sep, text = item.strip().partition("=")
        if not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"{flag}: expected KEY=VALUE, got {item!r}")
        if not sep:
            result[key] = True
            continue
        try:
            result[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            result[key] = text  # a bare word: a string
    return result


def _train_signature() -> inspect.Signature:
    """The ``train`` command's parameters: fixed ones, then one text option per TrainConfig field."""
    option = inspect.Parameter.KEYWORD_ONLY
    fixed = [
        inspect.Parameter("recipe", option, annotation=Optional[str], default=typer.Option(
            None, "--recipe", metavar="NAME|FILE", help="Recipe name (`cnnlab recipes`) or a TOML file; options override it.")),
        inspect.Parameter("resume", option, annotation=Optional[Path], default=typer.Option(
            None, "--resume", metavar="RUN", help="Continue a run folder from its latest checkpoint.")),
        inspect.Parameter("name", option, annotation=Optional[str], default=typer.Option(
            None, "--name", help="Run folder name (default: MODEL-DATASET-DATE-TIME).")),
        inspect.Parameter("runs_dir", option, annotation=Path, default=typer.Option(
            Path("runs"), "--runs-dir", metavar="DIR", help="Where run folders go.")),
        inspect.Parameter("model_option", option, annotation=List[str], default=typer.Option(
            [], "--model-option", metavar="KEY=VALUE", help="Model builder option (repeatable).")),
        inspect.Parameter("augment", option, annotation=Optional[str], default=typer.Option(
            None, "--augment", metavar="SPEC", help="Augmentation: 'shift=0.2,zoom=0.2,flip,fill=nearest' or none.")),
        inspect.Parameter("quiet", option, annotation=bool, default=typer.Option(
            False, "--quiet", "-q", help="Only the final line.")),
    ]
    generated = [
        inspect.Parameter(field, option, annotation=Optional[str], default=typer.Option(
            None, "--" + field.replace("_", "-"), metavar=metavar, help=help_text))
        for field, (metavar, help_text) in TRAIN_OPTIONS.items()
    ]
    return inspect.Signature(fixed + generated)


def _recipes() -> None:
    """List the recipes (cnnlab/recipes/*.toml) with the figure each one reproduces or aims at."""
    from cnnlab.training.config import list_recipes, load_recipe, recipe_path

    names = list_recipes()
    if not names:
        typer.echo("no recipes found")
        return
    for name in names:
        recipe = load_recipe(name)
        reference = recipe.get("reference", {})
        figures = [f"reference {reference['accuracy']:.2%}"] if "accuracy" in reference else []
        figures += [f"target {reference['target']:.2%}"] if "target" in reference else []
        typer.echo(f"{name:<18} {recipe.get('model', '?'):<10} {recipe.get('dataset', '?'):<12} {', '.join(figures)}")
    typer.echo(f"(in {recipe_path(names[0]).parent})")


def _results(runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", metavar="DIR", help="Folder of run folders."),
             out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="Write Markdown here (default: print).")) -> None:
    """Summarise recipe runs against their reference figures (docs/results.md)."""
    from cnnlab.io import atomic_write_text, check_output_path
    from cnnlab.training.results import results_markdown

    if out is not None:
        check_output_path(out, kind="file")
    text = results_markdown(runs_dir)
    if out is None:
        typer.echo(text)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    def train_command(**kwargs) -> None:
        _train(**kwargs)

    train_command.__signature__ = _train_signature()
    train_command.__doc__ = (
        "Train a model and write a run folder (config, history, checkpoints, model.keras, metrics, "
        "TensorBoard logs, train.log). Examples: `cnnlab train --recipe lenet5-mnist`; "
        "`cnnlab train --model lenet5 --dataset mnist --pad 2 --epochs 2`; `cnnlab train --resume runs/NAME`."
    )
    app.command("train")(train_command)
    app.command("recipes")(_recipes)
    app.command("results")(_results)
