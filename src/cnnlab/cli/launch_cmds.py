"""``cnnlab launch``: several local processes of one distributed run (one call to :func:`cnnlab.distributed.launch`)."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("launch", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def launch_command(
        ctx: typer.Context,
        processes: int = typer.Option(2, "-n", "--processes", metavar="N", help="How many processes to start."),
        port: Optional[int] = typer.Option(
            None, "--port", metavar="PORT", help="The coordinator's port on 127.0.0.1 (default: a free one)."
        ),
    ) -> None:
        """Run a cnnlab command in N local processes of one distributed run, e.g.
        `cnnlab launch -n 2 -- train --model lenet5 --dataset mnist --pad 2 --epochs 1 --batch-size 128`.
        Each process gets the coordinator, the count and its id in $CNNLAB_*, KERAS_BACKEND=jax, and `train`
        gets --distributed; output is prefixed with [rank K]; when one process fails the others are stopped."""
        from cnnlab.distributed import launch

        code = launch(processes, list(ctx.args), port=port)
        if code:
            raise typer.Exit(code)
