"""The Keras engine's own stepping on JAX and torch, each backend in its own process (Keras fixes the
backend per process): the faster paths must give the numbers of Keras's batch-by-batch step."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

# Two engines with the same seed: one steps three batches in one train_steps call, the other
# takes the same batches through Keras's train_on_batch one at a time. Prints whether every
# model and optimizer variable agrees bit for bit, the two mean losses, and the optimizer's class.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from cnnlab._keras import keras
    from cnnlab.runtime import start_runtime
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.engines import KerasEngine

    config = TrainConfig(model=sys.argv[1], dataset="synthetic", batch_size=8, optimizer="adam", lr=1e-3,
                         precision="float32", seed=3, split_batch=1)
    start_runtime(config)
    rng = np.random.default_rng(0)
    xs = rng.random((3, 8, 28, 28, 1), dtype=np.float32)
    ys = rng.integers(0, 10, (3, 8))
    keras.utils.set_random_seed(3)
    chunked = KerasEngine(config, (28, 28, 1), 10, total_steps=100)
    keras.utils.set_random_seed(3)
    single = KerasEngine(config, (28, 28, 1), 10, total_steps=100)
    same_start = all(np.array_equal(a, b) for a, b in zip(chunked.get_state().values(), single.get_state().values()))
    before = list(chunked.get_state().values())
    loss, accuracy = chunked.train_steps(xs, ys)
    losses = [float(single.model.train_on_batch(x, y, return_dict=True)["loss"]) for x, y in zip(xs, ys)]
    # the two models' variable paths differ by a suffix (seed_generator_1): compare by position
    a, b = list(chunked.get_state().items()), list(single.get_state().values())
    print(json.dumps({
        "backend": keras.backend.backend(),
        "same_start": same_start,
        "equal": [k for (k, v), w in zip(a, b) if np.array_equal(v, w)],
        "different": [k for (k, v), w in zip(a, b) if not np.array_equal(v, w)],
        "loss": loss,
        "single_last_loss": losses[-1],
        "trained": sum(not np.array_equal(v, w) for (_, v), w in zip(a, before)),
        "optimizer": type(chunked.optimizer).__module__ + "." + type(chunked.optimizer).__name__,
    }))
    """
)


def _run_on(backend: str, model: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "CNNLAB_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, model], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    return report


@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_steps_several_batches_per_call_exactly_as_train_on_batch_does():
    # mnist_cnn has dropout: its seed generator's state must travel with the rest of the state.
    report = _run_on("jax", "mnist_cnn")
    assert report["same_start"]
    assert report["different"] == []
    assert any(k.startswith("optimizer/") for k in report["equal"])
    assert any("seed_generator" in k for k in report["equal"]), report["equal"]
    # train_on_batch's loss is the mean over its one batch; train_steps' the mean over the three
    assert report["loss"] > 0 and report["single_last_loss"] > 0
    assert report["trained"] > 10  # the weights, slots and step counter moved: a real comparison


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_torch_uses_keras_torch_adam_updating_every_weight_in_one_call():
    report = _run_on("torch", "lenet5")
    # Keras swaps keras.optimizers.Adam for its torch._foreach_* version only for that exact class.
    assert report["optimizer"].startswith("keras.src.backend.torch.optimizers"), report["optimizer"]
    assert report["same_start"]
