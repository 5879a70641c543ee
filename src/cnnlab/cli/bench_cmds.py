"""``cnnlab bench``: training throughput, memory, start-up and time to accuracy against the plain way."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

SECTIONS_HELP = "throughput | memory | startup | tta | tuning (repeatable). Default: throughput and startup."


def register(app: typer.Typer) -> None:
    app.command()(bench)


def bench(
    quick: bool = typer.Option(False, "--quick", help="One round, short segments: a smoke run, not figures to quote."),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="SECTION", help=SECTIONS_HELP),
    model: Optional[List[str]] = typer.Option(
        None,
        "--model",
        metavar="NAME",
        help="lenet5, mnist_cnn, vgg_bn, airbench (repeatable; airbench races the fast-cifar10-90 "
        "recipe against airbench94 in plain PyTorch). Default: all four.",
    ),
    contender: Optional[List[str]] = typer.Option(
        None,
        "--contender",
        metavar="KEY",
        help="plain-keras, plain-torch, plain-jax, cnnlab, cnnlab-tensorflow, cnnlab-jax, cnnlab-torch, "
        "cnnlab-float32 (airbench only) (repeatable). Default: all.",
    ),
    dataset: Optional[List[str]] = typer.Option(
        None,
        "--dataset",
        metavar="NAME",
        help="tta only: mnist, fashion_mnist, cifar10_jpg (repeatable). Default: all.",
    ),
    recipe: Optional[List[str]] = typer.Option(
        None,
        "--recipe",
        metavar="NAME",
        help="tta only: the tasks of these fast recipes, e.g. fast-cifar10 (repeatable). Default: all.",
    ),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="Rounds of alternation (default 3, --quick 1)."),
    steps: Optional[int] = typer.Option(
        None,
        "--steps",
        min=1,
        metavar="N",
        help="throughput/tuning: training steps per timed segment, every network (default: ~1-3 s of work each).",
    ),
    baseline_rounds: Optional[int] = typer.Option(
        None,
        "--baseline-rounds",
        min=1,
        metavar="N",
        help="tta only: run the plain-Keras baseline for the first N seeds only (default: every round).",
    ),
    note: str = typer.Option(
        "", "--note", metavar="TEXT", help="A line to put at the top of the report (e.g. the machine's state)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="FILE", help="Write the markdown report here, e.g. docs/benchmarks.md."
    ),
) -> None:
    """Compare cnnlab with plain Keras, plain PyTorch and plain JAX, side by side, in fresh processes.

    Contenders alternate round by round; the tables give medians and ratios, the machine it ran on, and its measured matrix-multiply rate. See docs/benchmarks.md and docs/performance.md.
    """
    import shlex
    import sys

    from cnnlab.bench.harness import NETWORKS, Budget, run_benchmark

    budget = Budget.quick() if quick else Budget()
    if rounds is not None:
        budget.rounds = rounds
    budget.baseline_rounds = baseline_rounds
    budget.segment_steps = steps
    command = "cnnlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_benchmark(
        only=only,
        quick=quick,
        out=out,
        models=model or NETWORKS,
        budget=budget,
        contenders=contender,
        command=command,
        note=note,
        log=typer.echo,
        tta_datasets=dataset,
        tta_recipes=recipe,
    )
