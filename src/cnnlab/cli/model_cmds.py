"""``cnnlab models`` (the model zoo) and ``cnnlab summary MODEL`` (layers, parameters, FLOPs)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cnnlab.errors import ConfigError


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``"32,32,3"`` (or ``32x32x3``) -> ``(32, 32, 3)``; anything else is a one-line error."""
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--input-shape: expected H,W,C as three positive integers (e.g. 32,32,3), got {text!r}")
    return shape  # type: ignore[return-value]


def _dataset_shape(name: str) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of a dataset, reading only its test split."""
    from cnnlab.data import load_dataset

    data = load_dataset(name, splits=("test",))
    return data.input_shape, data.num_classes


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_command(
        pattern: str = typer.Argument("*", help="Shell-style filter on model names, e.g. 'resnet*'."),
        markdown: Optional[Path] = typer.Option(
            None, "--markdown", metavar="FILE", help="Write the docs/models.md page to FILE instead."
        ),
    ) -> None:
        """List the model zoo: input, parameters, FLOPs per image, description and paper."""
        from rich.console import Console
        from rich.table import Table

        from cnnlab.models.catalog import model_facts
        from cnnlab.models.registry import list_models, model_info

        if not list_models(pattern):
            raise ConfigError(f"pattern: no model matches {pattern!r} (try `cnnlab models`)")
        if markdown is not None:
            from cnnlab.io import atomic_write_text
            from cnnlab.models.docs import render_markdown

            atomic_write_text(markdown, render_markdown(model_facts(pattern)))
            typer.echo(f"wrote {markdown}")
            return
        table = Table(title="cnnlab models (parameters and FLOPs at the input shown)", show_lines=False)
        for column in ("model", "input", "classes", "params", "FLOPs/image", "description / paper"):
            table.add_column(column, justify="right" if column in ("classes", "params", "FLOPs/image") else "left")
        for facts in model_facts(pattern):
            info = model_info(facts.name)
            table.add_row(
                facts.name,
                "x".join(map(str, facts.input_shape)) + f" (min {info.min_size})",
                str(facts.num_classes),
                f"{facts.trainable_params:,}",
                f"{facts.flops / 1e6:,.1f} M",
                f"{info.description}\n[dim]{info.paper}[/dim]",
            )
        import sys

        # Piped output (grep, files) gets full rows instead of rows wrapped at 80 columns.
        Console(width=None if sys.stdout.isatty() else 200).print(table)

    @app.command("summary")
    def summary_command(
        model: str = typer.Argument(..., help="Model name (see `cnnlab models`)."),
        dataset: Optional[str] = typer.Option(
            None, "--dataset", "-d", metavar="NAME", help="Take the input shape and class count from this dataset."
        ),
        input_shape: Optional[str] = typer.Option(
            None, "--input-shape", metavar="H,W,C", help="Input shape, e.g. 32,32,3 (default: the model's)."
        ),
        num_classes: Optional[int] = typer.Option(
            None, "--num-classes", "-n", metavar="N", help="Number of classes (default: the dataset's, else 10)."
        ),
        option: List[str] = typer.Option(
            [],
            "--model-option",
            "--option",
            "-o",
            metavar="KEY=VALUE",
            help='A builder option, e.g. --model-option width=8 (repeatable; values are TOML: true, 8, 0.5, "text").',
        ),
    ) -> None:
        """Print a model's layer table, parameter counts and forward FLOPs per image."""
        if dataset is not None and input_shape is not None:
            raise ConfigError("--dataset and --input-shape: give one or the other")
        shape = parse_input_shape(input_shape) if input_shape is not None else None
        from cnnlab.training.config import parse_key_values

        options = parse_key_values(option, "--model-option")
        classes = num_classes
        if dataset is not None:
            shape, dataset_classes = _dataset_shape(dataset)
            classes = classes if classes is not None else dataset_classes

        from cnnlab.backend import quiet_native_stderr
        from cnnlab.models import count_flops, count_params, create_model

        with quiet_native_stderr():  # TensorFlow's first op logs a CUDA probe failure on CPU-only machines
            built = create_model(model, input_shape=shape, num_classes=10 if classes is None else classes, **options)
        built.summary()
        params = count_params(built)
        typer.echo(f"Total params:         {params.total:,}")
        typer.echo(f"Trainable params:     {params.trainable:,}")
        typer.echo(f"Non-trainable params: {params.non_trainable:,}")
        typer.echo(f"Forward FLOPs/image:  {count_flops(built):,} (a multiply-add counts 2; see docs/models.md)")
