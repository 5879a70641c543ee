"""Root of the ``cnnlab`` command line.

Each command group lives in its own module with a ``register(app)`` function; only Typer and
the standard library are imported here, so ``cnnlab --help`` answers without loading any
framework. Errors caused by bad input (:class:`cnnlab.errors.CnnlabError`) are printed as one
line on stderr with exit status 2; ``--debug`` shows the traceback instead.

The global options (``--backend``, ``--data-dir``, ``--debug``) may be given before or after the
command: :func:`hoist_global_options` moves them in front of it before Typer parses.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from cnnlab.errors import CnnlabError

# Modules under cnnlab.cli that add commands; each defines register(app).
COMMAND_MODULES = (
    "info",
    "data_cmds",
    "inspect_cmds",
    "model_cmds",
    "train_cmds",
    "run_cmds",
    "bench_cmds",
    "explain_cmds",
    "serve_cmds",
    "launch_cmds",
)

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
        None,
        "--backend",
        metavar="NAME",
        help="Keras backend: tensorflow (default), jax or torch. Same as $KERAS_BACKEND.",
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
    importlib.import_module(f"cnnlab.cli.{_name}").register(app)


# The root's options, and whether each takes a value: accepted anywhere before a literal ``--``.
GLOBAL_OPTIONS = {"--backend": True, "--data-dir": True, "--debug": False}


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with the global options that follow the command moved in front of it.

    ``cnnlab train --backend jax --model lenet5`` becomes ``cnnlab --backend jax train --model
    lenet5``. Left in place: anything after a literal ``--`` (arguments, not options), an option
    of the command's own with the same name, and the value of a command option that takes one
    (``--note --debug`` is a note). An unknown command is left for Typer to report.
    """
    if not any(token.split("=", 1)[0] in GLOBAL_OPTIONS for token in argv):
        return argv  # the common case costs nothing

    def width(token: str) -> int:  # tokens a global option spans: --debug, --backend=jax, --backend jax
        return 2 if GLOBAL_OPTIONS[token.split("=", 1)[0]] and "=" not in token else 1

    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":  # options before the command
        i += width(argv[i]) if argv[i].split("=", 1)[0] in GLOBAL_OPTIONS else 1
    command = typer.main.get_command(app).commands.get(argv[i]) if i < len(argv) else None
    if command is None:
        return argv
    takes_value = {}
    for param in command.params:
        if param.param_type_name == "option":  # Typer's own copy of Click: no isinstance against click
            for name in (*param.opts, *param.secondary_opts):
                takes_value[name] = not param.is_flag and not param.count
    hoisted, rest = [], []
    j = i + 1
    while j < len(argv):
        token = argv[j]
        name = token.split("=", 1)[0]
        if token == "--":
            rest += argv[j:]
            break
        if name in GLOBAL_OPTIONS and name not in takes_value and j + width(token) <= len(argv):
            hoisted += argv[j : j + width(token)]
            j += width(token)
        elif takes_value.get(token):  # the command's option and its value, whatever the value looks like
            rest += argv[j : j + 2]
            j += 2
        else:
            rest.append(token)
            j += 1
    return [*argv[:i], *hoisted, argv[i], *rest]


def _usage_error_line(exc: typer.TyperException) -> str:
    """Typer/Click usage errors as one line: the message and where to look for help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"cnnlab: error: {message}{hint}"


def main(argv: list[str] | None = None) -> None:
    # Warnings (NumPy's overflow, Pillow's decompression-bomb notice, ...) are held back while the
    # command runs: after a success they are shown, after an error the one-line message stands alone.
    failed, caught = True, []
    # --data-dir reaches the data layer through the environment; called in-process (tests, notebooks),
    # the command must not leave it changed for whatever the caller does next.
    saved_data_dir = os.environ.get("CNNLAB_DATA_DIR")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                _run(hoist_global_options(list(sys.argv[1:] if argv is None else argv)))
                failed = False
            except SystemExit as exit:
                failed = bool(exit.code)
                raise
    finally:
        if saved_data_dir is None:
            os.environ.pop("CNNLAB_DATA_DIR", None)
        else:
            os.environ["CNNLAB_DATA_DIR"] = saved_data_dir
        if not failed:
            _show(caught)


def _show(caught) -> None:
    for item in caught:
        # Deprecation notices are for the developers of the libraries cnnlab calls, not its users
        # (Python's own default hides them too, outside __main__).
        if issubclass(item.category, (DeprecationWarning, PendingDeprecationWarning)):
            continue
        warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def _run(argv: list[str] | None) -> None:
    try:
        # standalone_mode=False: usage errors reach us, so they are printed as one line
        # like every other error instead of Typer's multi-line box.
        code = app(args=argv, prog_name="cnnlab", standalone_mode=False)
    except CnnlabError as exc:
        if _debug:
            raise
        typer.echo(f"cnnlab: error: {' '.join(str(exc).split())}", err=True)
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
    except OSError as exc:  # read-only or full disk, file-size limit, a path under a regular file, ...
        if _debug:
            raise
        from cnnlab.errors import os_error_message

        typer.echo(f"cnnlab: error: {os_error_message(exc)}", err=True)
        sys.exit(2)
    except MemoryError:
        if _debug:
            raise
        typer.echo("cnnlab: error: out of memory (the data, model or batch is too large for this machine)", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("cnnlab: interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
