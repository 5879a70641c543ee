"""Backend selection and runtime set-up, done before Keras is imported.

Keras 3 reads ``KERAS_BACKEND`` once, at import. cnnlab therefore never imports Keras at module
level outside the heavy sub-packages, and those import it through :mod:`cnnlab._keras`, which
calls :func:`configure` first. The CLI's ``--backend`` option and :func:`set_backend` both end in
the same environment variable, so there is one way the backend is chosen.
"""

from __future__ import annotations

import contextlib
import os
import sys

from cnnlab.constants import BACKENDS, DEFAULT_BACKEND
from cnnlab.errors import ConfigError

THREADS_ENV = "CNNLAB_THREADS"

THREAD_ENVS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

_configured = False
_user_thread_envs: set[str] = set()  # the TensorFlow thread variables the user set (never overridden)
_layout_chosen = False  # set_thread_layout has run: the default must not undo a run's choice


def requested_backend() -> str:
    """The backend Keras will use (or uses): ``KERAS_BACKEND`` or the default."""
    name = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
    return "torch" if name == "pytorch" else name


def set_backend(name: str) -> None:
    """Choose the Keras backend. Must be called before anything imports Keras."""
    name = "torch" if name == "pytorch" else name
    if name not in BACKENDS:
        raise ConfigError(f"--backend: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != name:
            raise ConfigError(
                f"--backend: Keras is already running on {keras.backend.backend()!r}; "
                f"set KERAS_BACKEND={name} before importing keras or cnnlab models"
            )
    os.environ["KERAS_BACKEND"] = name


def thread_count() -> int:
    """Threads the numeric libraries may use: ``$CNNLAB_THREADS`` or the CPUs this process may run on."""
    value = os.environ.get(THREADS_ENV)
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ConfigError(f"{THREADS_ENV}: expected a positive integer, got {value!r}") from None
        if n < 1:
            raise ConfigError(f"{THREADS_ENV}: expected a positive integer, got {value!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure() -> None:
    """Set the backend (and torch's thread count) before Keras (and its backend) are first imported.

    Idempotent. TensorFlow's default inter-op pool plus intra-op pool oversubscribes small
    machines; :mod:`cnnlab._keras` sets the layout the performance benchmark chose
    (docs/performance.md, decisions 4 and 10) with :func:`set_thread_layout`, leaving alone any
    ``TF_NUM_*`` variable the user set (recorded here, before anything else runs).
    """
    global _configured
    if _configured:
        return
    _configured = True
    backend = requested_backend()
    if backend not in BACKENDS:
        raise ConfigError(f"KERAS_BACKEND: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter
    threads = thread_count()
    # TensorFlow's pools are set through tf.config when Keras is imported (cnnlab._keras), not
    # through these variables: a child process inherits the environment, and would take values
    # written here for the user's own choice.
    _user_thread_envs.update(name for name in THREAD_ENVS if name in os.environ)
    if backend == "torch" and "torch" not in sys.modules:
        try:
            import torch
        except ImportError:
            raise ConfigError("backend 'torch' is not installed: pip install 'cnnlab[torch]'") from None
        torch.set_num_threads(threads)
    if backend == "jax":
        try:
            import jax  # noqa: F401
        except ImportError:
            raise ConfigError("backend 'jax' is not installed: pip install 'cnnlab[jax]'") from None


def thread_layout() -> tuple[int, int]:
    """TensorFlow's (intra-op, inter-op) thread counts: the ones set here, else the environment's
    (0 = TensorFlow's own choice)."""
    import tensorflow as tf

    set_values = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    return tuple(value or int(os.environ.get(name, "0") or 0) for value, name in zip(set_values, THREAD_ENVS))  # type: ignore[return-value]


def set_thread_layout(intra: int, inter: int) -> bool:
    """Ask TensorFlow for ``intra`` threads per op and ``inter`` ops at once; True if that is the
    layout it runs with.

    Its pools are created when it runs its first op and are fixed for the process after that, and
    thread counts the user set in ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` are kept:
    in both cases nothing changes and the answer says whether the layout already is the one asked for.
    """
    global _layout_chosen
    configure()
    _layout_chosen = True
    with quiet_native_stderr():  # importing TensorFlow logs its CUDA probe on CPU-only machines
        import tensorflow as tf

        try:
            if "TF_NUM_INTRAOP_THREADS" not in _user_thread_envs:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if "TF_NUM_INTEROP_THREADS" not in _user_thread_envs:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError:  # TensorFlow is running: its pools cannot change
            pass
        return thread_layout() == (intra, inter)


def default_thread_layout() -> None:
    """TensorFlow's default layout here: intra-op = usable cores, inter-op = 1 (docs/performance.md,
    decision 4), unless a layout was chosen already (a run that splits its batches may choose
    before Keras is imported)."""
    if not _layout_chosen:
        set_thread_layout(thread_count(), 1)


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence C/C++ writes to stderr (file descriptor 2) for the duration of the block.

    TensorFlow's native logger prints start-up notices ("oneDNN custom operations are on",
    "Could not find cuda drivers") before it reads TF_CPP_MIN_LOG_LEVEL. Python exceptions are
    unaffected: they are raised, and printed after the descriptor is restored.
    Set CNNLAB_VERBOSE_NATIVE=1 to see them.
    """
    if os.environ.get("CNNLAB_VERBOSE_NATIVE") or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor (embedded interpreters, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_flags() -> set[str]:
    """The CPU feature flags (``/proc/cpuinfo``), e.g. ``amx_bf16``; empty where unknown (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
