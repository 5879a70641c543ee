"""``cnnlab train``, ``cnnlab recipes`` and ``cnnlab results``.

``train`` is one call to :func:`cnnlab.training.train`. Its options are generated from the
option schema (:data:`cnnlab.training.config.CLI_OPTIONS`): values are taken as text, so that a
bad value is reported by the config layer as one line naming the option (``--lr: expected a
positive number, got 'abc'``) rather than by the argument parser; boolean options are flags
(``--restore-best`` / ``--no-restore-best``). ``--help`` groups them in the schema's panels.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import List, Optional

import typer


def _train(
    recipe: Optional[str],
    resume: Optional[Path],
    name: Optional[str],
    runs_dir: Path,
    model_option: List[str],
    augment: Optional[str],
    quiet: bool,
    coordinator: Optional[str] = None,
    num_processes: Optional[str] = None,
    process_id: Optional[str] = None,
    **options,
) -> None:
    """Train a model (or a recipe, or resume a run) and write a run folder."""
    from cnnlab.backend import requested_backend
    from cnnlab.training import train
    from cnnlab.training.config import parse_key_values

    options = {k: v for k, v in options.items() if v is not None}
    if model_option:
        options["model_options"] = parse_key_values(model_option, "--model-option")
    if augment is not None:
        options["augmentation"] = (
            {} if augment.strip().lower() in ("", "none") else parse_key_values(augment.split(","), "--augment")
        )
    if resume is None:
        options["backend"] = requested_backend()  # --backend / $KERAS_BACKEND, recorded in the config
    run = train(
        recipe=recipe,
        resume=resume,
        name=name,
        runs_dir=runs_dir,
        verbose=not quiet,
        coordinator=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        **options,
    )
    if run is not None:  # a distributed run's other processes write nothing
        typer.echo(f"run folder: {run.path}")


def _option(name: str, annotation, default, *flags: str, **settings) -> inspect.Parameter:
    """A keyword-only command parameter declared as a Typer option."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=typer.Option(default, *flags, **settings)
    )


def _train_signature() -> inspect.Signature:
    """The ``train`` command's parameters: fixed ones, then one option per schema field, in panels."""
    from cnnlab.training.config import CLI_OPTIONS

    run, runtime = "run folder", "runtime"
    first = [
        _option(
            "recipe",
            Optional[str],
            None,
            "--recipe",
            metavar="NAME|FILE",
            rich_help_panel="model",
            help="Recipe name (`cnnlab recipes`) or a TOML file; options override it.",
        ),
        _option(
            "model_option",
            List[str],
            [],
            "--model-option",
            metavar="KEY=VALUE",
            rich_help_panel="model",
            help='Model builder option, repeatable; values are TOML (true, 8, 0.5, "text"). With --recipe, '
            "changes the recipe's option of that name and keeps its others.",
        ),
        _option(
            "augment",
            Optional[str],
            None,
            "--augment",
            metavar="SPEC",
            rich_help_panel="data",
            help="Augmentation as comma-separated KEY=VALUE pairs, e.g. shift=0.1,flip; or none. With --recipe, "
            "changes the recipe's keys it names and keeps its others (none clears them).",
        ),
    ]
    last = [
        _option(
            "coordinator",
            Optional[str],
            None,
            "--coordinator",
            metavar="HOST:PORT",
            rich_help_panel=runtime,
            help="--distributed: process 0's address (default: $CNNLAB_COORDINATOR, or SLURM's first node).",
        ),
        _option(
            "num_processes",
            Optional[str],
            None,
            "--num-processes",
            metavar="N",
            rich_help_panel=runtime,
            help="--distributed: how many processes (default: $CNNLAB_NUM_PROCESSES or $SLURM_NTASKS).",
        ),
        _option(
            "process_id",
            Optional[str],
            None,
            "--process-id",
            metavar="K",
            rich_help_panel=runtime,
            help="--distributed: this process, 0 to N-1 (default: $CNNLAB_PROCESS_ID or $SLURM_PROCID).",
        ),
        _option(
            "resume",
            Optional[Path],
            None,
            "--resume",
            metavar="RUN",
            rich_help_panel=run,
            help="Continue a run folder from its latest checkpoint.",
        ),
        _option(
            "name",
            Optional[str],
            None,
            "--name",
            metavar="NAME",
            rich_help_panel=run,
            help="Run folder name (default: MODEL-DATASET-DATE-TIME).",
        ),
        _option(
            "runs_dir",
            Path,
            Path("runs"),
            "--runs-dir",
            metavar="DIR",
            rich_help_panel=run,
            help="Where run folders go.",
        ),
        _option("quiet", bool, False, "--quiet", "-q", metavar="", rich_help_panel=run, help="Only the final line."),
    ]
    # The panels in the schema's order (Typer shows them in the order it first meets them), run folder last.
    return inspect.Signature(first + _schema_parameters(CLI_OPTIONS) + last)


def _schema_parameters(options) -> list[inspect.Parameter]:
    """One Typer option per schema field (``CLI_OPTIONS`` or a subset), in its ``--help`` panel."""
    option = inspect.Parameter.KEYWORD_ONLY
    generated = []
    for name, spec in options.items():
        meta, cli_flag = spec.metadata, "--" + name.replace("_", "-")
        default = spec.default if spec.default is not dataclasses.MISSING else None
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        help_text = meta["help"] + (f" Default: {shown}." if default not in (None, "") else "")
        if isinstance(default, bool):  # a flag pair; None = not given (the recipe's or the default value)
            parameter = typer.Option(
                None,
                f"{cli_flag}/--no-{cli_flag[2:]}",
                metavar="",
                rich_help_panel=meta["panel"],
                help=help_text,
                show_default=False,
            )
            annotation = Optional[bool]
        else:
            parameter = typer.Option(
                None,
                cli_flag,
                metavar=meta["metavar"],
                rich_help_panel=meta["panel"],
                help=help_text,
                show_default=False,
            )
            annotation = Optional[str]
        generated.append(inspect.Parameter(name, option, annotation=annotation, default=parameter))
    return generated


# What `cnnlab lr-find` does not take from the schema: it sets the rate itself, runs --steps steps of
# its ramp, validates nothing, writes no run folder and keeps no moving average.
LR_FIND_SKIPS = (
    "lr",
    "schedule",
    "warmup_steps",
    "decay_every",
    "decay_rate",
    "min_lr",
    "epochs",
    "validate_every",
    "early_stopping",
    "monitor",
    "min_delta",
    "checkpoint_every",
    "restore_best",
    "ema",
    "unfreeze_at",
    "backbone_lr_mult",
    "l2_sp",
    "tta",
)


def _lr_find(
    recipe: Optional[str],
    model_option: List[str],
    augment: Optional[str],
    start_lr: str,
    end_lr: str,
    out: Path,
    quiet: bool,
    **options,
) -> None:
    """The learning-rate range test (Smith 2017): an exponential ramp of the rate, a smoothed loss curve
    (lr-find.png), a suggested rate (lr-find.json); writes no run folder."""
    from cnnlab.backend import requested_backend
    from cnnlab.training.config import flag, parse_key_values
    from cnnlab.training.lr_find import lr_find

    options = {k: v for k, v in options.items() if v is not None}
    if model_option:
        options["model_options"] = parse_key_values(model_option, "--model-option")
    if augment is not None:
        options["augmentation"] = (
            {} if augment.strip().lower() in ("", "none") else parse_key_values(augment.split(","), "--augment")
        )
    options["backend"] = requested_backend()
    rates = {}
    for name, text in (("start_lr", start_lr), ("end_lr", end_lr)):
        try:
            rates[name] = float(text)
        except ValueError:
            from cnnlab.errors import ConfigError

            raise ConfigError(f"{flag(name)}: expected a positive number, got {text!r}") from None
    from cnnlab.training.config import OPTIONS

    steps = OPTIONS["steps"].metadata["check"]("steps", options.pop("steps", 100))
    result = lr_find(recipe=recipe, num_steps=steps, out=out, verbose=not quiet, **rates, **options)
    typer.echo(f"suggested learning rate: {result.suggested:.3g} ({result.plot})")


def _lr_find_signature() -> inspect.Signature:
    from cnnlab.training.config import CLI_OPTIONS

    train = _train_signature().parameters
    kept = {name: spec for name, spec in CLI_OPTIONS.items() if name not in LR_FIND_SKIPS}
    panel = "range test"
    ramp = [
        _option(
            "start_lr", str, "1e-7", "--start-lr", metavar="RATE", rich_help_panel=panel, help="First rate of the ramp."
        ),
        _option("end_lr", str, "10", "--end-lr", metavar="RATE", rich_help_panel=panel, help="Last rate of the ramp."),
        _option(
            "out",
            Path,
            Path("lr-find"),
            "--out",
            metavar="DIR",
            rich_help_panel=panel,
            help="Folder for lr-find.png and lr-find.json.",
        ),
        _option(
            "quiet", bool, False, "--quiet", "-q", metavar="", rich_help_panel=panel, help="Only the suggested rate."
        ),
    ]
    generated = _schema_parameters(kept)
    for parameter in generated:
        if parameter.name == "steps":  # the schema's --steps is the ramp's length here
            parameter.default.help = "Steps of the ramp (it stops early once the loss diverges). Default: 100."
            parameter.default.rich_help_panel = "range test"
    return inspect.Signature([train["recipe"], train["model_option"], train["augment"], *generated, *ramp])


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


def _results(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", metavar="DIR", help="Folder of run folders."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="Write Markdown here (default: print)."),
) -> None:
    """Summarise recipe runs against their reference figures (docs/results.md)."""
    from cnnlab.io import atomic_write_text, check_output_path
    from cnnlab.training.results import results_markdown

    if out is not None:
        check_output_path(out, kind="file")
    unreadable: list[str] = []
    text = results_markdown(runs_dir, unreadable)
    for reason in unreadable:
        typer.echo(f"cnnlab: warning: not counted: {reason}", err=True)
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

    def lr_find_command(**kwargs) -> None:
        _lr_find(**kwargs)

    lr_find_command.__signature__ = _lr_find_signature()
    lr_find_command.__doc__ = (
        "Learning-rate range test (Smith 2017): raise the rate exponentially from --start-lr to --end-lr over "
        "--steps steps, stop once the smoothed loss passes 4x its best; writes lr-find.png and lr-find.json to "
        "--out (no run folder). Example: `cnnlab lr-find --model lenet5 --dataset mnist --pad 2 --optimizer sgd`."
    )
    app.command("lr-find")(lr_find_command)
    app.command("recipes")(_recipes)
    app.command("results")(_results)
