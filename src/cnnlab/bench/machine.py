"""What the benchmark ran on, and how fast that machine multiplies matrices.

Throughput figures only mean something next to the hardware that produced them, so every report
carries :func:`machine_info` (CPU model, cores, backend versions, accelerators), and the
training rates are also given as a fraction of :func:`matmul_gflops`, the single-precision
matrix-multiply rate measured on the same machine in the same invocation. A large square
float32 ``A @ B`` is the best case for any BLAS (arithmetic intensity ~ n/3 flop per byte), so
it is a practical "peak" for what convolution and dense layers can reach on the CPU.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from importlib import metadata

import numpy as np

from cnnlab.backend import cpu_flags
from cnnlab.runtime import BF16_CPU_FLAGS


def cpu_times() -> list[int] | None:
    """The machine-wide CPU time counters of ``/proc/stat`` (Linux), or None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            return [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_fraction(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of CPU time the hypervisor gave to other guests between two :func:`cpu_times`.

    On a virtual machine the host can take the CPUs away ("steal", the 8th counter): every
    contender then slows down, and timings from such a stretch are not comparable with a quiet
    one. Reports carry this figure so that a noisy run shows itself.
    """
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    deltas = [b - a for a, b in zip(before, after)]
    total = sum(deltas[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return deltas[7] / total if total > 0 else None


def matmul_gflops(n: int = 2048, repeats: int = 7, dtype=np.float32) -> float:
    """Median GFLOP/s of an ``n x n`` by ``n x n`` float32 product with NumPy's BLAS.

    A product of two n x n matrices is n^3 multiply-adds = ``2 n^3`` FLOPs. One untimed product
    first (BLAS thread start-up, page faults), then the median of ``repeats`` timed ones, because
    the median ignores the odd repeat that lost the CPU to another process.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    b = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        seconds.append(time.perf_counter() - start)
    return 2.0 * n**3 / statistics.median(seconds) / 1e9


def cpu_model() -> str:
    """The CPU's marketing name (``lscpu``'s "Model name"), else ``platform.processor()``."""
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            return value.strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def gpu_names() -> list[str]:
    """NVIDIA GPUs seen by ``nvidia-smi`` (empty on CPU-only machines), without importing a framework."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def machine_info() -> dict:
    """CPU, cores, memory, accelerators and library versions, read without importing any framework."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    gpus = gpu_names()
    return {
        "cpu": cpu_model(),
        "cores": usable,
        "memory_gb": round(mem_kb / 2**20, 1),
        "device": ", ".join(gpus) if gpus else "CPU",
        "bf16_units": sorted(cpu_flags() & BF16_CPU_FLAGS),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": {name: _version(name) for name in ("numpy", "keras", "tensorflow", "jax", "jaxlib", "torch")},
    }


def bf16_matmul_gflops(n: int = 2048, repeats: int = 7, budget: float = 5.0) -> float | None:
    """Median GFLOP/s of a bfloat16 ``n x n`` product with PyTorch (oneDNN; AMX where the CPU has it).

    Context for mixed-precision figures, which can exceed the float32 rate. ``None`` without PyTorch.
    On a CPU without bfloat16 units the product is emulated and can be a hundred times slower than
    float32: a 512 x 512 product is timed first and ``n`` is halved (down to 256) until ``repeats``
    products fit in ``budget`` seconds, so the measurement never takes minutes.
    """
    try:
        import torch
    except ImportError:
        return None

    def seconds_for(size: int) -> float:
        a = torch.randn(size, size).to(torch.bfloat16)
        start = time.perf_counter()
        torch.mm(a, a)
        return time.perf_counter() - start

    probe = seconds_for(512)
    while n > 256 and probe * (n / 512) ** 3 * repeats > budget:
        n //= 2
    a = torch.randn(n, n).to(torch.bfloat16)
    b = torch.randn(n, n).to(torch.bfloat16)
    torch.mm(a, b)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return 2.0 * n**3 / statistics.median(seconds) / 1e9
