"""Root of the ``cnnlab`` command line.

Each command group lives in its own module with a ``register(app)`` function; only Typer and
the standard library are imported here, so ``cnnlab --help`` answers without loading any
framework. Errors caused by bad input (:class:`cnnlab.errors.CnnlabError`) are printed as one
line on stderr with exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from cnnlab.errors import CnnlabError

# Modules under cnnlab.cli that add commands; each defines register(app).
COMMAND_MODULES = ("info", "data_cmds", "model_cmds", "train_cmds", "run_cmds", "bench_cmds", "launch_cmds")

app = typer.Typer(
    name="cnnlab",
    help="Build, train, evaluate and explain convolutional image classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False


@app.callback()
def _root(
    backend: Optional[str] = typer.Option(
        None, "--backend", metavar="NAME", help="Keras backend: tensorflow (default), jax or torch. Same as $KERAS_BACKEND."
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", metavar="DIR", help="Where datasets live. Default: $CNNLAB_DATA_DIR, else ~/.cache/cnnlab."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    global _debug
    _debug = debug
    if backend is not None:
        from cnnlab.backend import set_backend

        set_backend(backend)
    if data_dir is not None:
        os.environ["CNNLAB_DATA_DIR"] = str(data_dir)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"cnnlab.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command group not written yet
        if exc.name != f"cnnlab.cli.{_name}":
            raise
        continue
    _module.register(app)


def _usage_error_line(exc: "typer.TyperException") -> str:
    """Typer/Click usage errors as one line: the message and where to look for help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"cnnlab: error: {message}{hint}"


def main(argv: list[str] | None = None) -> None:
    try:
        # standalone_mode=False: usage errors reach us, so they are printed as one line
        # like every other error instead of Typer's multi-line box.
        code = app(args=argv, prog_name="cnnlab", standalone_mode=False)
    except CnnlabError as exc:
        if _debug:
            raise
        typer.echo(f"cnnlab: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `cnnlab` or a bare group: show help
            typer.echo(exc.format_message())
            sys.exit(0)
        typer.echo(_usage_error_line(exc), err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        typer.echo("cnnlab: aborted", err=True)
        sys.exit(1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if _debug:
            raise
        typer.echo(f"cnnlab: error: {exc.strerror or exc}: {exc.filename}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("cnnlab: interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
