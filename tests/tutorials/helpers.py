"""Running the tutorial chapters (``tutorials/ch*.py``) as a learner would, at the small budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, require_data

TUTORIALS = REPO / "tutorials"
CHAPTERS = {path.name.split("_")[0]: path for path in sorted(TUTORIALS.glob("ch[0-9][0-9]_*.py"))}

# The real data files each chapter reads; a chapter is skipped, with the reason, when one is absent.
NEEDS = {
    "ch01": [("mnist",)],
    "ch02": [("mnist",)],
    "ch03": [("mnist",)],
    "ch04": [("cifar10-jpg", "cifar10-jpg.tar.gz")],
    "ch05": [("cifar10-jpg", "cifar10-jpg.tar.gz")],
    "ch06": [("mnist",), ("cifar10-jpg", "cifar10-jpg.tar.gz")],
    "ch07": [("cifar10-jpg", "cifar10-jpg.tar.gz")],
    "ch08": [("mnist",), ("fashion-mnist",)],
}


def tutorial_env(out: Path) -> dict[str, str]:
    """The environment of a small-budget run: real data, figures under ``out``, no display."""
    data_dir = require_data()
    env = os.environ.copy()
    env.update(
        CNNLAB_TUTORIAL_BUDGET="small",
        CNNLAB_TUTORIAL_OUT=str(out),
        CNNLAB_DATA_DIR=str(data_dir),
        MPLBACKEND="Agg",
        KERAS_BACKEND=env.get("KERAS_BACKEND", "tensorflow"),
    )
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def require_chapter_data(chapter: str) -> None:
    for parts in NEEDS[chapter]:
        require_data(*parts)


def run_chapter(chapter: str, tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python tutorials/chNN_*.py`` in a fresh process, in an empty working folder."""
    require_chapter_data(chapter)
    return subprocess.run(
        [sys.executable, str(CHAPTERS[chapter])],
        cwd=tmp_path,
        env=tutorial_env(tmp_path / "out"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
