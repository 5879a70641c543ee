"""The reliability fuzz suite's shared pieces: one tiny trained run, the CLI called in-process, and checks.

Every case asserts the same contract (docs/reliability.md): exit status 2, exactly one
``cnnlab: error:`` line on stderr naming the culprit, no traceback, and no change to any file
that existed before the command ran. The CLI is called in-process (``cnnlab.cli.app.main``):
TensorFlow is imported once per test process instead of once per case.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
from pathlib import Path

import pytest

TINY = dict(epochs=0, steps=6, batch_size=32, val_split=100, max_train_samples=300, max_eval_samples=100, seed=0)
CASE_SECONDS = 90  # a case that blocks (a FIFO read) fails instead of hanging the suite


class Hang(BaseException):
    """Raised by the alarm: not an OSError, so the CLI cannot turn a hang into a clean-looking error."""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run: softmax on 300 digits, 6 steps, with validation and test splits (about 2 s)."""
    os.environ.setdefault("CNNLAB_THREADS", "1")
    from cnnlab.training import train

    runs = tmp_path_factory.mktemp("reliability-runs")
    return train("softmax", "digits", name="tiny", runs_dir=runs, verbose=False, **TINY)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the tiny run, for cases that change its files."""
    target = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run.path, target, symlinks=True)
    return target


def snapshot(*roots: Path) -> dict[str, str]:
    """path -> content digest (or kind) of every entry under ``roots``; FIFOs are never opened."""
    result = {}
    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            continue
        entries = [root, *root.rglob("*")] if root.is_dir() and not root.is_symlink() else [root]
        for path in entries:
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                result[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(mode):
                result[str(path)] = "link:" + os.readlink(path)
            elif stat.S_ISDIR(mode):
                result[str(path)] = "dir"
            else:
                result[str(path)] = f"special:{stat.S_IFMT(mode)}"
    return result


def unchanged(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Entries that existed before and differ or vanished after (new entries are judged separately)."""
    return [path for path, digest in before.items() if after.get(path) != digest]


def call_cli(capsys, *args) -> tuple[int, str, str]:
    """``cnnlab ARGS`` in this process: (exit status, stdout, stderr)."""
    from cnnlab.cli.app import main

    def alarm(signum, frame):
        raise Hang(f"cnnlab {' '.join(map(str, args))} blocked for {CASE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles) -> str:
    """Exit 2, one ``cnnlab: error:`` line naming every needle, and nothing else on stderr."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("cnnlab: error: "), lines[0]
    for needle in needles:
        assert str(needle) in lines[0], f"{needle!r} not named in: {lines[0]}"
    return lines[0]


def no_temporaries(*roots: Path) -> list[str]:
    """Temporary files (``.NAME.tmp-*``, ``.tmp-ckpt-*``) left under ``roots``."""
    found = []
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.name.startswith(".") and ".tmp-" in path.name:
                found.append(str(path))
    return found


@pytest.fixture
def clean_error(capsys):
    """``clean_error(args, needles, protect=[paths])``: run the CLI and assert the whole contract."""

    def check(args, needles=(), protect=()):
        before = snapshot(*protect)
        code, out, err = call_cli(capsys, *args)
        line = assert_one_line_error(code, err, *needles)
        changed = unchanged(before, snapshot(*protect))
        assert not changed, f"{line}\nchanged or removed: {changed}"
        leftovers = no_temporaries(*[p for p in protect if Path(p).is_dir()])
        assert not leftovers, f"temporary files left: {leftovers}"
        return line

    return check
