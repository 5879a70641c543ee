"""Run one contender in a fresh process and measure its wall-clock time and peak memory.

``os.wait4`` returns the resource usage of exactly the child it reaped, so each process's peak
resident set size (``ru_maxrss``) is its own, not the maximum over all children so far as
``getrusage(RUSAGE_CHILDREN)`` would report.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    timed_out: bool = False


def run_process(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> ProcessResult:
    """Run ``argv`` with ``env`` added to this environment; output is captured through temporary files."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=full_env, stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
        out.seek(0)
        err.seek(0)
        return ProcessResult(
            returncode=proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            seconds=seconds,
            peak_rss_mb=usage.ru_maxrss / 1024,  # Linux: KiB
            timed_out=seconds >= timeout,
        )
