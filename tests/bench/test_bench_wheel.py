"""``cnnlab bench`` from an installed wheel, outside the checkout: its contenders ship in the package.

The wheel is built from a copy of the sources (so the checkout gets no ``build/`` folder), and
installed without dependencies into a fresh virtual environment. The heavy dependencies
(TensorFlow, Keras, PyTorch, ...) come from the environment running the tests, through a ``.pth``
file in the new environment's site-packages: a line in a ``.pth`` file adds a folder to
``sys.path`` after the environment's own site-packages, so ``import cnnlab`` finds the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PINNED_ENV, REPO


def _run(argv, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def _outside_env() -> dict:
    """This environment without the checkout on the path and without the test session's pins."""
    pinned = set(os.environ.get(PINNED_ENV, "").split(","))
    env = {k: v for k, v in os.environ.items() if k not in pinned and k not in (PINNED_ENV, "PYTHONPATH")}
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


@pytest.mark.slow
def test_bench_runs_from_an_installed_wheel(tmp_path):
    env = _outside_env()
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    # No build isolation: the build back end (setuptools) comes from this environment, no download.
    _run(
        [sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "-w", wheels, "-q"],
        cwd=tmp_path,
        env=env,
    )
    [wheel] = wheels.glob("cnnlab-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env)
    python, cnnlab = venv / "bin" / "python", venv / "bin" / "cnnlab"
    [own_site] = (venv / "lib").glob("python3*/site-packages")
    (own_site / "heavy-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"  # not the checkout, not the source copy
    elsewhere.mkdir()
    where = _run([python, "-c", "import cnnlab.bench.contenders as c; print(c.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.stdout.strip()).is_relative_to(own_site)  # the wheel's copy, not a checkout's

    assert "--contender" in _run([cnnlab, "bench", "--help"], cwd=elsewhere, env=env).stdout
    out = elsewhere / "bench.md"
    _run(
        [
            cnnlab,
            "bench",
            "--quick",
            "--only",
            "throughput",
            "--model",
            "lenet5",
            "--contender",
            "plain-keras",
            "--steps",
            "2",
            "--out",
            out,
        ],
        cwd=elsewhere,
        env=env,
        timeout=600,
    )
    row = next(line for line in out.read_text().splitlines() if line.startswith("| plain Keras (TF) |"))
    images_per_s = row.split("|")[2].strip()
    assert float(images_per_s.replace(",", "")) > 0, row
