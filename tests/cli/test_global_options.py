"""The global options (--backend, --data-dir, --debug) work before or after the command.

In process through ``cnnlab.cli.app.main`` where the command stays light; one real process for
the backend, which must be chosen before Keras is imported.
"""

from __future__ import annotations

import json

import pytest

from cnnlab.cli import app as cli
from cnnlab.errors import CnnlabError
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--backend", "jax", "--model", "lenet5"], ["--backend", "jax", "train", "--model", "lenet5"]),
        (["evaluate", "RUN", "--data-dir", "D"], ["--data-dir", "D", "evaluate", "RUN"]),
        (["predict", "RUN", "a.png", "--debug"], ["--debug", "predict", "RUN", "a.png"]),
        (["evaluate", "RUN", "--data-dir=D", "--json"], ["--data-dir=D", "evaluate", "RUN", "--json"]),
        # before the command: unchanged; before and after: both kept, in order (the last one wins)
        (["--backend", "torch", "train"], ["--backend", "torch", "train"]),
        (["--debug", "train", "--backend", "jax"], ["--debug", "--backend", "jax", "train"]),
        # after a literal --, tokens are arguments
        (["predict", "RUN", "--", "--debug"], ["predict", "RUN", "--", "--debug"]),
        # the value of a command's option is never taken for a global option
        (["bench", "--note", "--debug", "--quick"], ["bench", "--note", "--debug", "--quick"]),
        # an unknown command, or a global option missing its value: left for Typer to report
        (["no-such-command", "--debug"], ["no-such-command", "--debug"]),
        (["evaluate", "RUN", "--backend"], ["evaluate", "RUN", "--backend"]),
    ],
)
def test_global_options_move_in_front_of_the_command(argv, expected):
    assert cli.hoist_global_options(argv) == expected


def test_data_dir_after_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "elsewhere"))  # restored after the test
    cli.main(["datasets", "--json", "--data-dir", str(tmp_path)])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["mnist"]["location"].startswith(str(tmp_path))


def test_debug_after_the_command_shows_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_debug", False)
    missing = tmp_path / "no-such-run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", str(missing)])
    assert exit_info.value.code == 2 and "cnnlab: error:" in capsys.readouterr().err
    with pytest.raises(CnnlabError):  # raised, not turned into one line
        cli.main(["evaluate", str(missing), "--debug"])


def test_backend_after_the_command_reaches_the_root(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["datasets", "--backend", "theano"])
    assert exit_info.value.code == 2
    assert "--backend: unknown backend 'theano'" in capsys.readouterr().err


@pytest.mark.jax
def test_backend_after_the_command_selects_it():
    pytest.importorskip("jax")
    proc = run_cli("info", "--json", "--backend", "jax")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == "jax"
