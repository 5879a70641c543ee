"""Data-parallel training across processes (and the devices of each) on Keras's distribution API, with JAX.

How a distributed run works (docs/distributed.md):

* every process runs the same ``cnnlab train --distributed ...``; process 0 also hosts JAX's
  coordination service at the coordinator address. The processes join with
  ``jax.distributed.initialize`` (what ``keras.distribution.initialize`` calls; called directly
  here because Keras does not pass on the connection and heartbeat timeouts), then
  ``keras.distribution.set_distribution(DataParallel(devices=jax.devices()))``: the variables are
  replicated on every device of every process, and each batch is split along its first axis;
* each process reads only its block of every global batch (:meth:`World.shard`: the global batch
  is the one a single process would take, a function of seed, epoch and step, and process ``k``
  takes its ``k``-th block), and Keras's ``train_on_batch`` assembles the global batch from those
  blocks (``jax.make_array_from_process_local_data``): the loss is the global batch's mean and
  the gradients are all-reduced, so the step means what it means on one process;
* evaluation is sharded too (:class:`DistributedKerasEngine`): each process runs the network on
  its block of every evaluation batch, and the logits are gathered on every process, so every
  process computes the same loss and accuracy, and takes the same decisions (best checkpoint,
  early stopping) without any further message;
* only process 0 writes the run folder; a Ctrl-C seen by any process stops all of them at the
  same step (:meth:`World.any`);
* faults: JAX's coordination service expects a heartbeat from every process; a process that
  stops sending them for :data:`HEARTBEAT_SECONDS` is declared lost and the others stop. JAX
  ends them with a long native log; :func:`stderr_filter` (a small process reading this one's
  stderr) turns it into one line naming the lost process.

``cnnlab launch -n N -- train ...`` (:func:`launch`) starts N local processes with the right
environment and streams their output with a ``[rank k]`` prefix.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from cnnlab.errors import ConfigError

HEARTBEAT_SECONDS = int(os.environ.get("CNNLAB_HEARTBEAT_TIMEOUT", "30"))  # a silent process is lost after this
CONNECT_SECONDS = int(os.environ.get("CNNLAB_CONNECT_TIMEOUT", "300"))  # waiting for the coordinator / the others
SHUTDOWN_SECONDS = 300  # at the end, how long a process waits for the others (process 0 writes the outputs)
_TEXT_BYTES = 4096  # broadcast text (the run name) up to this length

_world: World | None = None


# ----------------------------------------------------------------------------- joining the cluster


def start_data_parallel(config, cluster=None) -> dict:
    """Join the cluster (``--distributed``), then data parallel over every device; the runtime's fields.

    On JAX without ``--distributed``, a process with several devices (GPUs) is data parallel over
    them with no flag; with one device nothing happens (and nothing changes).
    """
    global _world

    distributed = bool(getattr(config, "distributed", False))
    if distributed and config.backend != "jax":
        raise ConfigError(
            f"--distributed: needs the JAX backend, not {config.backend}: Keras 3 distributes training "
            f"across processes only on JAX (keras.distribution; TensorFlow's MultiWorkerMirroredStrategy does "
            f"not work with Keras 3, torch's DDP needs a hand-written loop); add --backend jax"
        )
    fields = {}
    if distributed:
        if cluster is None:
            raise ConfigError("--distributed: no cluster description (cnnlab.runtime.resolve_cluster makes one)")
        if config.batch_size % cluster.processes:  # checked again over the devices once they are known
            raise ConfigError(
                f"--batch-size: a global batch of {config.batch_size} does not divide among "
                f"{cluster.processes} processes; use a multiple of {cluster.processes}"
            )
        if cluster.processes > 1:
            _join(cluster)
        fields = {
            "processes": cluster.processes,
            "process_id": cluster.process_id,
            "coordinator": cluster.coordinator if cluster.processes > 1 else "",
        }
    import jax

    devices = jax.devices()
    local = jax.local_device_count()
    if not distributed and local == 1:
        return {}
    if config.level != "keras":
        if distributed:
            raise ConfigError(f"--distributed: needs --level keras, not {config.level}")
        return {}
    from cnnlab._keras import keras

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    fields.update(devices=len(devices), local_devices=local)
    fields.setdefault("processes", jax.process_count())
    fields.setdefault("process_id", jax.process_index())
    _world = World(processes=fields["processes"], rank=fields["process_id"], local_devices=local)
    return fields


def _join(cluster) -> None:
    """``jax.distributed.initialize`` with clear errors for the usual mistakes, and bounded waits."""
    import jax

    host, _, port = cluster.coordinator.rpartition(":")
    if cluster.process_id == 0:
        _check_port_free(host, int(port))
    else:
        _wait_for_coordinator(host, int(port), cluster)
    install_stderr_filter(cluster.process_id)
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator,
        num_processes=cluster.processes,
        process_id=cluster.process_id,
        initialization_timeout=CONNECT_SECONDS,
        heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
        shutdown_timeout_seconds=SHUTDOWN_SECONDS,
    )
    if jax.process_count() != cluster.processes:
        with World(processes=cluster.processes, rank=cluster.process_id).fail_fast():  # no exit barrier
            raise ConfigError(
                f"--num-processes: this process was started with {cluster.processes}, the coordinator "
                f"{cluster.coordinator} with {jax.process_count()}; start every process with the same count"
            )


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            raise ConfigError(
                f"--coordinator: port {port} is in use on this host (another program, or an earlier "
                f"run still running); choose another port"
            ) from None


def _wait_for_coordinator(host: str, port: int, cluster) -> None:
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"--coordinator: cannot reach process 0 at {cluster.coordinator} after "
                    f"{CONNECT_SECONDS} s (is it running, and the port open to this host?)"
                ) from None
            time.sleep(0.5)


def world() -> World:
    """This process's place in the data-parallel run (one process, one device when not parallel)."""
    return _world or World()


# ----------------------------------------------------------------------------- the processes' world


@dataclass(frozen=True)
class World:
    """The processes of a data-parallel run as the training loop sees them."""

    processes: int = 1
    rank: int = 0
    local_devices: int = 1

    @property
    def devices(self) -> int:
        return self.processes * self.local_devices

    @property
    def parallel(self) -> bool:
        return self.devices > 1

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's block of a global batch's rows (all of them on one process)."""
        if self.processes == 1:
            return rows
        per = len(rows) // self.processes
        return rows[self.rank * per : (self.rank + 1) * per]

    def seed(self, *key) -> list:
        """A generator seed for this process's part of a batch: ``key`` on one process (as before)."""
        return list(key) if self.processes == 1 else [*key, self.rank]

    def check_batches(self, batch_size: int, n: int, drop_last: bool) -> None:
        """The global batch (and the last, partial one) must split evenly over the devices."""
        if not self.parallel:
            return
        if batch_size % self.devices:
            raise ConfigError(
                f"--batch-size: a global batch of {batch_size} does not divide among {self.processes} "
                f"processes x {self.local_devices} devices; use a multiple of {self.devices}"
            )
        last = n % batch_size
        if last and not drop_last and last % self.devices:
            raise ConfigError(
                f"--drop-last: the last batch of each epoch holds {last} of the {n} images, which do "
                f"not divide among {self.devices} devices; add --drop-last (or change --batch-size)"
            )

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any (a collective: every process must call it)."""
        if self.processes == 1:
            return bool(flag)
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.array([int(bool(flag))], dtype=np.int32))))

    def text_of_rank0(self, text: str) -> str:
        """Process 0's ``text`` on every process (e.g. the run name it chose)."""
        if self.processes == 1:
            return text
        from jax.experimental import multihost_utils

        data = text.encode("utf-8")[:_TEXT_BYTES]
        buffer = np.zeros(_TEXT_BYTES + 4, dtype=np.uint8)
        buffer[:4] = np.frombuffer(np.array([len(data)], dtype=">u4").tobytes(), dtype=np.uint8)
        buffer[4 : 4 + len(data)] = np.frombuffer(data, dtype=np.uint8)
        got = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
        size = int(np.frombuffer(got[:4].tobytes(), dtype=">u4")[0])
        return got[4 : 4 + size].tobytes().decode("utf-8")

    def check_same(self, value: int, what: str) -> None:
        """Every process holds the same ``value`` (e.g. the checkpoint's step), else a one-line error."""
        if self.processes == 1:
            return
        from jax.experimental import multihost_utils

        values = np.asarray(multihost_utils.process_allgather(np.array([value], dtype=np.int64))).ravel()
        if len(set(values.tolist())) > 1:
            raise ConfigError(
                f"--distributed: the processes disagree on {what}: "
                + ", ".join(f"process {k}: {v}" for k, v in enumerate(values.tolist()))
            )

    @contextlib.contextmanager
    def fail_fast(self):
        """An error on one process ends it at once (one line on stderr), without JAX's exit barrier.

        A process that exits normally waits for the others at JAX's shutdown barrier, while they wait
        for it in their next collective: each would wait for the other for minutes. Ending at once
        instead lets the others see it stop sending heartbeats and stop within the heartbeat timeout.
        """
        if self.processes == 1:
            yield
            return
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 - any error: report it and leave without waiting
            from cnnlab.errors import CnnlabError

            if _peer_lost(exc):
                # A collective failed because a peer is gone. JAX's coordination service names it once it misses
                # its heartbeats and then ends this process (stderr_filter makes that one line): wait for it.
                sys.stdout.flush()
                time.sleep(HEARTBEAT_SECONDS + 15)
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                message, code = (
                    (
                        f"cnnlab: error: process {self.rank}: distributed: lost another process ({first}); "
                        f"stopping. Continue from the last checkpoint with: cnnlab train --resume RUN "
                        f"--distributed (all processes)"
                    ),
                    1,
                )
            elif isinstance(exc, CnnlabError):
                message = f"cnnlab: error: process {self.rank}: {exc}"
                code = exc.exit_code
            elif isinstance(exc, KeyboardInterrupt):
                message, code = f"cnnlab: process {self.rank}: {exc or 'interrupted'}", 130
            else:
                import traceback

                traceback.print_exc()
                message, code = f"cnnlab: error: process {self.rank}: {type(exc).__name__}: {exc}", 1
            sys.stdout.flush()
            print(message, file=sys.stderr, flush=True)
            os._exit(code)


def _peer_lost(exc: BaseException) -> bool:
    """A collective's failure because a peer process went away (gloo's socket closed, JAX's runtime error)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(
        marker in text
        for marker in ("Gloo", "gloo", "Connection reset by peer", "Connection closed", "coordination service")
    )


# ----------------------------------------------------------------------------- the engine


def distributed_engine_class():
    """:class:`~cnnlab.training.engines.KerasEngine` with sharded evaluation (defined lazily: it needs Keras)."""
    from cnnlab.training.engines import KerasEngine

    class DistributedKerasEngine(KerasEngine):
        """A Keras model under ``DataParallel``: training is Keras's own (``train_on_batch`` takes this process's
        block of the global batch); ``logits`` runs each process's block of the batch on its devices and
        gathers the logits on every process."""

        def logits(self, x):
            import jax

            model = self._inference_model()
            w = world()
            n = len(x)
            per = -(-n // w.devices) * w.local_devices  # rows per process: whole rows per device
            padded = np.concatenate([x, np.repeat(x[-1:], per * w.processes - n, axis=0)]) if n else x
            block = padded[w.rank * per : (w.rank + 1) * per]
            forward = self._forward(model)
            sharding = self._keras.distribution.distribution().get_data_layout(block.shape).backend_layout
            inputs = jax.make_array_from_process_local_data(sharding, block)
            variables = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
            return np.asarray(forward(*variables, inputs))[:n]

        def keras_model(self):
            """A host-local float32 copy of the network (no device layout): what the writers (process 0 only)
            save. The training model's variables are laid out over every process, so assigning to them, or
            anything in ``model.save`` that does, is a collective every process would have to join."""
            keras = self._keras
            distribution = keras.distribution.distribution()
            keras.distribution.set_distribution(None)
            try:
                if getattr(self, "_local", None) is None:
                    self._local = self._build_model("float32")
                self._local.set_weights(self.model.get_weights())  # host copies: no collective
            finally:
                keras.distribution.set_distribution(distribution)
            return self._local

        def _forward(self, model):
            cache = self.__dict__.setdefault("_forwards", {})
            if id(model) not in cache:
                import jax

                mesh = self._keras.distribution.distribution().device_mesh.backend_mesh
                replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

                def forward(trainable, non_trainable, x):
                    return model.stateless_call(trainable, non_trainable, x, training=False)[0]

                cache[id(model)] = jax.jit(forward, out_shardings=replicated)
            return cache[id(model)]

    return DistributedKerasEngine


# ----------------------------------------------------------------------------- JAX's fatal log, as one line

_FATAL = "Terminating process because the JAX distributed service detected fatal errors"
_HOLD = ("coordination_service", "Check failure stack trace")


def install_stderr_filter(rank: int) -> None:
    """Route this process's stderr (file descriptor 2) through :func:`stderr_filter` in a small child process.

    JAX ends a process whose peer was lost with a fatal native log (several lines and a stack
    trace) and ``abort()``; only another process can still print something after that.
    """
    if os.environ.get("CNNLAB_RAW_STDERR"):
        return
    read, write = os.pipe()
    subprocess.Popen(
        [sys.executable, "-m", "cnnlab.distributed", "--stderr-filter", str(rank)],
        stdin=read,
        stdout=os.dup(2),
        close_fds=True,
        start_new_session=True,
    )
    os.close(read)
    sys.stderr.flush()
    os.dup2(write, 2)
    os.close(write)


def summarize_fatal(text: str, rank: int) -> str:
    """JAX's fatal coordination log -> one line naming the lost process."""
    lost = re.search(r"stopped sending heartbeats\):\s*([\d\s,]+)", text)
    if lost:
        ids = [int(v) for v in re.findall(r"\d+", lost.group(1))]
        names = ", ".join(str(i) for i in ids)
        what = f"lost process {names} (no heartbeat for {HEARTBEAT_SECONDS} s)"
    elif "leader task" in text or "Failed to send RPC to coordination service" in text:
        what = "lost process 0, the coordinator (its coordination service stopped answering)"
    elif "RegisterTask" in text or "Barrier" in text:
        what = f"not every process joined within {CONNECT_SECONDS} s (check --num-processes and that all started)"
    else:
        first = next((line for line in text.splitlines() if "Status" in line or "error" in line.lower()), "")
        what = "the distributed runtime failed: " + first.strip()[:200]
    if what.startswith("not every process joined"):
        return f"cnnlab: error: process {rank}: distributed: {what}"
    return (
        f"cnnlab: error: process {rank}: distributed: {what}; stopping. Continue from the last checkpoint "
        f"with: cnnlab train --resume RUN --distributed (all processes)"
    )


def stderr_filter(rank: int, source=None, sink=None) -> None:
    """Copy ``source`` to ``sink`` line by line; JAX's fatal distributed log becomes one line (:func:`summarize_fatal`).

    Lines that may start that log (coordination service errors) are held for a few seconds: if the
    fatal line follows they are summarised, otherwise they are copied as they were.
    """
    source = source or sys.stdin.buffer
    sink = sink or sys.stdout.buffer
    held: list[bytes] = []
    fatal = False
    held_since = 0.0
    pending = b""
    fd = source.fileno()
    while True:
        timeout = 1.0 if held and not fatal else None
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            if held and not fatal and time.monotonic() - held_since > 5:
                sink.write(b"".join(held))
                sink.flush()
                held = []
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw + b"\n"
            text = line.decode("utf-8", "replace")
            if fatal:
                held.append(line)
            elif _FATAL in text:
                fatal = True
                held.append(line)
            elif held or any(marker in text for marker in _HOLD):
                if not held:
                    held_since = time.monotonic()
                held.append(line)
            else:
                sink.write(line)
                sink.flush()
    if pending:
        held.append(pending)
    if fatal:
        summary = summarize_fatal(b"".join(held).decode("utf-8", "replace"), rank)
        sink.write((summary + "\n").encode("utf-8"))
    elif held:
        sink.write(b"".join(held))
    sink.flush()


# ----------------------------------------------------------------------------- cnnlab launch


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def launch(
    processes: int,
    args: list[str],
    *,
    port: int | None = None,
    python: str | None = None,
    env: dict | None = None,
    out=None,
    grace: float = 10.0,
) -> int:
    """Run ``cnnlab ARGS`` in ``processes`` local processes of one distributed run; their exit status.

    Each gets ``CNNLAB_COORDINATOR=127.0.0.1:PORT`` (a free port unless given), ``CNNLAB_NUM_PROCESSES``,
    ``CNNLAB_PROCESS_ID`` and ``KERAS_BACKEND=jax`` (unless set); ``train`` gets ``--distributed``. Their
    output is streamed with a ``[rank k]`` prefix. When one fails, the others are stopped (SIGTERM, then
    SIGKILL after ``grace`` seconds) and the returned status is non-zero; a line names the failed rank.
    """
    if processes < 1:
        raise ConfigError(f"-n: expected a positive number of processes, got {processes}")
    if not args:
        raise ConfigError("launch: give the command to run after --, e.g. cnnlab launch -n 2 -- train ...")
    out = out or sys.stdout
    if port is None:
        port = free_port()
    else:
        _check_port_free("127.0.0.1", port)
    args = list(args)
    if "train" in args and "--distributed" not in args:
        args.insert(args.index("train") + 1, "--distributed")
    base = dict(os.environ if env is None else env)
    base.setdefault("KERAS_BACKEND", "jax")
    base["PYTHONUNBUFFERED"] = "1"
    lock = threading.Lock()
    children = []
    for rank in range(processes):
        child_env = {
            **base,
            "CNNLAB_COORDINATOR": f"127.0.0.1:{port}",
            "CNNLAB_NUM_PROCESSES": str(processes),
            "CNNLAB_PROCESS_ID": str(rank),
        }
        children.append(
            subprocess.Popen(
                [python or sys.executable, "-m", "cnnlab", *args],
                env=child_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )

    def stream(rank, pipe):
        for raw in iter(pipe.readline, b""):
            with lock:
                out.write(f"[rank {rank}] {raw.decode('utf-8', 'replace').rstrip()}\n")
                out.flush()

    readers = [threading.Thread(target=stream, args=(k, c.stdout), daemon=True) for k, c in enumerate(children)]
    for reader in readers:
        reader.start()
    failed = None
    try:
        while True:
            codes = [c.poll() for c in children]
            bad = [(k, code) for k, code in enumerate(codes) if code not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if all(code == 0 for code in codes):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:  # Ctrl-C reached the children too: they checkpoint and stop together
        deadline = time.monotonic() + 120
        while any(c.poll() is None for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        failed = failed or (None, 130)
    if failed is not None:
        _stop(children, grace)
    for reader in readers:
        reader.join(timeout=5)
    if failed is None:
        return 0
    rank, code = failed
    if rank is None:
        print("cnnlab launch: interrupted; all processes stopped", file=sys.stderr, flush=True)
        return 130
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    print(
        f"cnnlab launch: rank {rank} {how}; stopped the other {processes - 1} process(es)", file=sys.stderr, flush=True
    )
    return code if code > 0 else 128 - code


def _stop(children, grace: float) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--stderr-filter":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the training process; read until it ends
    stderr_filter(int(sys.argv[2]))
