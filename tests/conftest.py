"""Shared test helpers: the real data directory, and running the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# TensorFlow fixes its thread pools when it runs its first op, for the life of the process, and a
# training run that splits its batches asks for one thread per part (cnnlab.training.split). So
# without a pin, whichever test first ran TensorFlow on a test worker chose the layout for every
# later test there, and float32 results that depend on it (a scratch twin's SGD agreement at 1e-3
# holds with two intra-op threads, not with one: a kernel's reduction order) depended on the test
# order. The pin goes through the variables cnnlab treats as the user's (never overridden), set
# before anything imports Keras; one the user set is kept. The names pinned are listed in
# PINNED_ENV (inherited by xdist workers), so run_cli can remove them: a `cnnlab` child process
# chooses its layout as it does for a user.
PINNED_ENV = "CNNLAB_TESTS_PINNED"


def pytest_configure(config):
    from cnnlab.backend import thread_count

    if PINNED_ENV in os.environ:  # an xdist worker: the controller pinned already
        return
    pinned = []
    for name, value in (("TF_NUM_INTRAOP_THREADS", str(thread_count())), ("TF_NUM_INTEROP_THREADS", "1")):
        if name not in os.environ:
            os.environ[name] = value
            pinned.append(name)
    os.environ[PINNED_ENV] = ",".join(pinned)


@pytest.fixture(autouse=True)
def _keras_global_config():
    """Put Keras's process-wide settings back after each test that changed them: dtype policy
    (mixed precision), floatx, epsilon, image data format. Costs nothing when Keras is not loaded."""
    keras = sys.modules.get("keras")
    saved = _keras_config(keras) if keras is not None else None
    yield
    keras = sys.modules.get("keras")
    if keras is None:
        return
    if saved is None:  # Keras was first imported by this test: its defaults were in force
        saved = {"policy": "float32", "floatx": "float32", "epsilon": 1e-7, "format": "channels_last"}
    if _keras_config(keras) != saved:
        keras.config.set_dtype_policy(saved["policy"])
        keras.config.set_floatx(saved["floatx"])
        keras.config.set_epsilon(saved["epsilon"])
        keras.config.set_image_data_format(saved["format"])


def _keras_config(keras) -> dict:
    return {
        "policy": keras.config.dtype_policy().name,
        "floatx": keras.config.floatx(),
        "epsilon": keras.config.epsilon(),
        "format": keras.config.image_data_format(),
    }


def shared_data_dir() -> Path | None:
    """The real datasets (``$CNNLAB_DATA_DIR``, else ``../shared/data`` beside the checkout)."""
    env = os.environ.get("CNNLAB_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


def require_data(*parts: str) -> Path:
    """Path to a real dataset file or folder, or skip the test saying what is missing."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("real datasets not available: set CNNLAB_DATA_DIR (CI uses ../shared/data)")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset file not available: {path}")
    return path


@pytest.fixture
def data_dir() -> Path:
    """The real data directory; skips the test when it is absent."""
    return require_data()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep derived files (extracted archives, decoded arrays) out of the user's home.

    One cache per test session, shared by the xdist workers (their temp folders sit side by
    side), so an expensive decode (the CIFAR-10 JPEG copy) happens once. Cache files are
    written atomically, so workers racing on the same entry are safe.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cache = root / "cnnlab-cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(cache))


def cli_env(extra: dict | None = None) -> dict:
    """The environment a user's `cnnlab` process would have: this one without the thread pins the
    test session set for itself (cnnlab chooses its own layout), plus ``extra``."""
    pinned = set(os.environ.get(PINNED_ENV, "").split(","))
    env = {k: v for k, v in os.environ.items() if k not in pinned and k != PINNED_ENV}
    return {**env, **(extra or {})}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run ``python -m cnnlab ARGS`` in a real subprocess; returns the CompletedProcess.

    ``env`` adds variables to the environment; a value of None removes the variable."""
    full_env = cli_env()
    full_env.setdefault("KERAS_BACKEND", "tensorflow")
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_error(proc, *needles: str) -> None:
    """A user error: non-zero exit, one line on stderr mentioning each needle, no traceback."""
    assert proc.returncode != 0, f"expected failure, got exit 0; stdout={proc.stdout!r}"
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    for needle in needles:
        assert needle.lower() in err.lower(), f"{needle!r} not in error: {err}"
