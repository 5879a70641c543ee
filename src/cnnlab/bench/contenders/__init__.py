"""The programs the benchmark harness races, each run in a fresh process as ``python -m MODULE``.

* :mod:`cnnlab.bench.contenders.plain_keras`: the reference networks the plain Keras way
  (``model.fit``, every default), the yardstick;
* :mod:`cnnlab.bench.contenders.plain_torch`: the same networks in the textbook PyTorch loop;
* :mod:`cnnlab.bench.contenders.plain_jax`: the same networks in plain JAX, one ``jax.jit`` step per batch;
* :mod:`cnnlab.bench.worker`: cnnlab's own ways of training.

They are modules of the package, not scripts beside it, so ``cnnlab bench`` finds them wherever
cnnlab is installed (a wheel has no ``benchmarks/`` folder). This module imports only the standard
library: running a plain contender must not set up any framework.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contender:
    """One way of doing the thing measured: a command, and the environment it runs in."""

    label: str
    argv: tuple[str, ...]
    env: dict = field(default_factory=dict, hash=False)
    key: str = ""  # short name for --contender; defaults to the label
    requires: str = ""  # a module it needs (torch, jax): without it, the harness reports "not installed"

    def missing(self) -> str | None:
        """The module this contender needs and this environment lacks, if any."""
        import importlib.util

        return self.requires if self.requires and importlib.util.find_spec(self.requires) is None else None


def python_cmd(*args: str) -> tuple[str, ...]:
    """A command running this interpreter (the one cnnlab is installed in) with ``args``."""
    return (sys.executable, *args)


def module_cmd(module: str, *args: str) -> tuple[str, ...]:
    """``python -m cnnlab.bench.contenders.MODULE ARGS`` (``module`` may be a full dotted name)."""
    return python_cmd("-m", module if "." in module else f"{__name__}.{module}", *args)
