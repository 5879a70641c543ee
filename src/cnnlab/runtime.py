"""The runtime of a training run, resolved once: backend, precision, batch split and thread layout.

Everything "auto" about how a run executes is decided here, by one pure function over one
description of the machine (:func:`resolve_runtime` over a :class:`Machine`), then recorded in
the run's ``config.json``. Every consumer reads that record: the engines, the benchmark worker
and ``--resume`` (a resumed run re-resolves from its recorded, no longer "auto", values and
therefore gets the same answer). :func:`start_runtime` is the one entry point that also applies
the answer to the process (the Keras backend, TensorFlow's thread pools) and reports whether it
could.

The rules (measured in docs/performance.md):

* precision ``auto``: ``mixed_float16`` with an accelerator; ``mixed_bfloat16`` for TensorFlow on
  a CPU with bfloat16 units (AVX-512 BF16 or AMX); ``float32`` otherwise and for the scratch and
  lowlevel levels;
* ``split_batch`` 0 (auto): the most parts (at most the cores) of at least :data:`MIN_PART`
  images each that the batch splits into, for TensorFlow on a CPU and a network without batch
  norm at the keras level; 1 otherwise;
* thread layout (TensorFlow): ``cores / parts`` threads per op and ``parts`` ops at once.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from cnnlab.constants import DEFAULT_BACKEND

MIN_PART = 16  # images per part below which splitting a batch is not worth its fixed cost per op
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})  # bfloat16 matrix instructions oneDNN uses


@dataclass(frozen=True)
class Machine:
    """What the runtime depends on: usable cores, CPU feature flags, accelerators."""

    cores: int
    cpu_flags: frozenset = frozenset()
    accelerators: tuple = ()

    @classmethod
    def detect(cls) -> Machine:
        """This machine as the current backend sees it (imports Keras and its backend)."""
        from cnnlab.backend import cpu_flags, thread_count

        return cls(
            cores=thread_count(), cpu_flags=frozenset(cpu_flags()), accelerators=tuple(describe()["accelerators"])
        )


@dataclass(frozen=True)
class Runtime:
    """How a run executes; ``to_dict()`` is stored as ``config.json``'s ``runtime``."""

    backend: str
    precision: str
    split_batch: int
    intra_op: int = 0  # TensorFlow's threads per op (0: not TensorFlow)
    inter_op: int = 0  # TensorFlow's ops at once
    processes: int = 1  # data parallel: processes (cnnlab train --distributed), this one's id, devices of all
    process_id: int = 0
    devices: int = 1
    local_devices: int = 1
    coordinator: str = ""
    warnings: tuple = field(default=(), compare=False)

    def to_dict(self) -> dict:
        record = asdict(self)
        record["warnings"] = list(self.warnings)
        return record


def resolve_runtime(config, machine: Machine, batch_norm: bool | None = None) -> Runtime:
    """The runtime ``config`` means on ``machine``; pure (no side effects).

    ``config`` needs ``backend``, ``level``, ``precision``, ``split_batch``, ``batch_size`` and
    ``model``; ``batch_norm`` says whether the network normalises over the batch (looked up in
    the model registry when None; an unknown model is not split, and the engine reports it).
    """
    backend = config.backend or DEFAULT_BACKEND
    precision = config.precision
    if precision == "auto":
        if config.level != "keras":
            precision = "float32"
        elif machine.accelerators:
            precision = "mixed_float16"
        elif backend == "tensorflow" and machine.cpu_flags & BF16_CPU_FLAGS:
            precision = "mixed_bfloat16"
        else:
            precision = "float32"
    parts = config.split_batch
    if parts == 0:
        parts = 1
        if config.level == "keras" and backend == "tensorflow" and not machine.accelerators:
            if batch_norm is None:
                batch_norm = _batch_norm(config.model)
            if batch_norm is False:
                parts = max(
                    (
                        p
                        for p in range(2, machine.cores + 1)
                        if config.batch_size % p == 0 and config.batch_size // p >= MIN_PART
                    ),
                    default=1,
                )
    intra = inter = 0
    if backend == "tensorflow":
        intra, inter = (max(machine.cores // parts, 1), parts) if parts > 1 else (machine.cores, 1)
    return Runtime(backend=backend, precision=precision, split_batch=parts, intra_op=intra, inter_op=inter)


def _batch_norm(model: str) -> bool | None:
    from cnnlab.errors import ModelError
    from cnnlab.models import model_info

    try:
        return bool(model_info(model).batch_norm)
    except ModelError:
        return None


@dataclass(frozen=True)
class Cluster:
    """Where a distributed run's processes meet: the coordinator (process 0's host:port), how many, which one."""

    coordinator: str
    processes: int
    process_id: int


CLUSTER_ENVS = ("CNNLAB_COORDINATOR", "CNNLAB_NUM_PROCESSES", "CNNLAB_PROCESS_ID")
SLURM_PORT = 12355  # the coordinator's port under SLURM unless CNNLAB_COORDINATOR says otherwise


def resolve_cluster(coordinator=None, num_processes=None, process_id=None, environ=None) -> Cluster:
    """The cluster a ``--distributed`` process belongs to; pure over ``environ`` (default ``os.environ``).

    Each value comes from its flag (``--coordinator``, ``--num-processes``, ``--process-id``), else
    ``CNNLAB_COORDINATOR`` / ``CNNLAB_NUM_PROCESSES`` / ``CNNLAB_PROCESS_ID`` (set by ``cnnlab launch``),
    else SLURM's ``SLURM_STEP_NODELIST`` (its first host, port 12355), ``SLURM_NTASKS`` and ``SLURM_PROCID``.
    """
    from cnnlab.errors import ConfigError

    env = os.environ if environ is None else environ
    slurm_host = _first_slurm_host(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "")
    coordinator = coordinator or env.get("CNNLAB_COORDINATOR") or (f"{slurm_host}:{SLURM_PORT}" if slurm_host else "")
    count = _cluster_int("--num-processes", num_processes, env, "CNNLAB_NUM_PROCESSES", "SLURM_NTASKS", 1)
    rank = _cluster_int("--process-id", process_id, env, "CNNLAB_PROCESS_ID", "SLURM_PROCID", 0)
    if not coordinator:
        raise ConfigError(
            "--coordinator: a distributed run needs process 0's HOST:PORT (or $CNNLAB_COORDINATOR; "
            "cnnlab launch and SLURM set it)"
        )
    host, _, port = str(coordinator).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator: expected HOST:PORT, got {coordinator!r}")
    if count is None:
        raise ConfigError(
            "--num-processes: a distributed run needs the number of processes "
            "(or $CNNLAB_NUM_PROCESSES / $SLURM_NTASKS)"
        )
    if rank is None:
        raise ConfigError(
            "--process-id: a distributed run needs this process's id, 0 to N-1 (or $CNNLAB_PROCESS_ID / $SLURM_PROCID)"
        )
    if not 0 <= rank < count:
        raise ConfigError(f"--process-id: expected 0 to {count - 1} for {count} processes, got {rank}")
    return Cluster(coordinator=str(coordinator), processes=count, process_id=rank)


def _cluster_int(flag_name, value, env, own, slurm, minimum):
    from cnnlab.errors import ConfigError

    source, text = flag_name, value
    if text is None:
        source, text = (own, env.get(own)) if env.get(own) not in (None, "") else (slurm, env.get(slurm))
    if text in (None, ""):
        return None
    try:
        number = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: expected an integer, got {text!r}") from None
    if number < minimum:
        raise ConfigError(f"{source}: expected an integer >= {minimum}, got {text!r}")
    return number


def _first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[03-05,07],cpu1`` -> ``gpu03``."""
    first = ""
    depth = 0
    for char in nodelist.strip():
        if char == "," and depth == 0:
            break
        depth += char == "["
        depth -= char == "]"
        first += char
    if "[" not in first:
        return first
    prefix, _, ranges = first.partition("[")
    return prefix + ranges.rstrip("]").split(",")[0].split("-")[0]


def start_runtime(config, cluster: Cluster | None = None) -> Runtime:
    """Resolve the runtime of ``config``, apply it to this process, record it in ``config``.

    Sets the Keras backend (``config.backend``, else ``$KERAS_BACKEND``, else TensorFlow) before
    Keras is imported, then TensorFlow's thread pools. A layout TensorFlow cannot take (its pools
    are fixed once it ran an op, and ``TF_NUM_*`` variables the user set are kept) is not an error:
    the run computes the same numbers, and the returned runtime carries a warning for the log.
    """
    from cnnlab.backend import requested_backend, set_backend, set_thread_layout, thread_layout

    set_backend(config.backend or requested_backend())
    config.backend = requested_backend()
    parallel = {}
    if getattr(config, "distributed", False) or config.backend == "jax":
        from cnnlab.distributed import start_data_parallel

        # Before anything runs on JAX (Machine.detect lists its devices): joins the cluster when distributed.
        if getattr(config, "distributed", False) and cluster is None:
            cluster = resolve_cluster()
        parallel = start_data_parallel(config, cluster)
    runtime = resolve_runtime(config, Machine.detect())
    if parallel:
        runtime = Runtime(**{**asdict(runtime), **parallel})
    config.precision, config.split_batch = runtime.precision, runtime.split_batch
    if runtime.backend == "tensorflow" and not set_thread_layout(runtime.intra_op, runtime.inter_op):
        intra, inter = thread_layout()
        warning = (
            f"thread layout: asked TensorFlow for {runtime.intra_op} threads per op and {runtime.inter_op} "
            f"ops at once, it runs with {intra} and {inter} (its pools were already running, or "
            f"TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS are set); the numbers are the same"
        )
        runtime = Runtime(**{**asdict(runtime), "warnings": (warning,)})
    return runtime


def explicit_backend() -> str | None:
    """The backend the user asked for (``--backend`` or ``$KERAS_BACKEND``), None when nothing was said."""
    name = os.environ.get("KERAS_BACKEND")
    return None if not name else ("torch" if name == "pytorch" else name)


def describe() -> dict:
    """Versions, backend and hardware, for ``cnnlab info`` and run folders. Imports Keras."""
    import platform

    from cnnlab import __version__
    from cnnlab._keras import keras
    from cnnlab.backend import quiet_native_stderr, thread_count, thread_layout

    backend = keras.backend.backend()
    info = {
        "cnnlab": __version__,
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": None,
        "cpu_threads": thread_count(),
        "accelerators": [],
    }
    if backend == "tensorflow":
        import tensorflow as tf

        info["backend_version"] = tf.__version__
        info["tensorflow_threads"] = dict(zip(("intra_op", "inter_op"), thread_layout()))
        with quiet_native_stderr():  # device discovery logs a CUDA error on CPU-only machines
            devices = tf.config.list_physical_devices()
        info["accelerators"] = [d.name for d in devices if d.device_type != "CPU"]
    elif backend == "torch":
        import torch

        info["backend_version"] = torch.__version__
        if torch.cuda.is_available():
            info["accelerators"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif backend == "jax":
        import jax

        info["backend_version"] = jax.__version__
        info["accelerators"] = [str(d) for d in jax.devices() if d.platform != "cpu"]
    return info
