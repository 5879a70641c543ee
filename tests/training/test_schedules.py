"""Learning-rate schedules and optimizers built from the config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.training.config import resolve_config


def _rates(total=100, **options):
    from cnnlab.training.optim import learning_rate, rate_at

    config = resolve_config(model="lenet5", dataset="mnist", steps=total, **options)
    rate = learning_rate(config, total)
    return [rate_at(rate, step) for step in range(total + 1)]


def test_constant_with_warmup_ramps_then_holds():
    rates = _rates(lr=0.1, warmup_steps=10)
    assert rates[0] == pytest.approx(0.01)
    assert rates[9] == pytest.approx(0.1) and rates[50] == pytest.approx(0.1)
    assert all(a <= b + 1e-9 for a, b in zip(rates[:10], rates[1:11]))


def test_step_schedule_decays_in_stairs():
    rates = _rates(lr=0.1, schedule="step", decay_every=30, decay_rate=0.5)
    assert rates[29] == pytest.approx(0.1) and rates[30] == pytest.approx(0.05) and rates[90] == pytest.approx(0.0125)


def test_cosine_ends_at_min_lr():
    rates = _rates(lr=0.1, schedule="cosine", min_lr=0.001)
    assert rates[0] == pytest.approx(0.1)
    assert rates[50] == pytest.approx(0.001 + 0.099 * 0.5, rel=1e-3)
    assert rates[100] == pytest.approx(0.001, rel=1e-3)


def test_one_cycle_rises_to_the_peak_then_anneals():
    rates = _rates(lr=0.1, schedule="one-cycle")
    peak = max(range(len(rates)), key=rates.__getitem__)
    assert peak == 30 and rates[peak] == pytest.approx(0.1)
    assert rates[0] == pytest.approx(0.1 / 25) and rates[100] == pytest.approx(0.1 / 1e4, rel=1e-2)
    assert all(math.isfinite(r) for r in rates)


@pytest.mark.parametrize(
    "name, cls, checks",
    [
        ("sgd", "SGD", {"momentum": 0.9, "nesterov": True}),
        ("adam", "Adam", {}),
        ("adamw", "AdamW", {"weight_decay": 0.01}),
        ("rmsprop", "RMSprop", {"rho": 0.9}),
    ],
)
def test_optimizers(name, cls, checks):
    from cnnlab.training.optim import build_optimizer, learning_rate

    options = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {}
    if name == "adamw":
        options["weight_decay"] = 0.01
    config = resolve_config(model="lenet5", dataset="mnist", epochs=1, optimizer=name, lr=0.01, **options)
    optimizer = build_optimizer(config, learning_rate(config, 10))
    assert type(optimizer).__name__ == cls
    for key, value in checks.items():
        assert getattr(optimizer, key) == pytest.approx(value)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_adam_matches_keras(name):
    """cnnlab's Adam / AdamW (one fused kernel per variable on TensorFlow) against Keras's own."""
    from cnnlab._keras import keras
    from cnnlab.training.optim import Adam, AdamW

    ours_class, keras_class = {"adam": (Adam, keras.optimizers.Adam), "adamw": (AdamW, keras.optimizers.AdamW)}[name]
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(30, 20)).astype("float32"), rng.normal(size=(20,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(5)]
    finals = []
    for optimizer_class in (ours_class, keras_class):
        variables = [keras.Variable(w) for w in start]
        optimizer = optimizer_class(learning_rate=0.01, weight_decay=0.1 if name == "adamw" else None)
        for step_grads in grads:
            optimizer.apply_gradients(zip(step_grads, variables))
        finals.append([keras.ops.convert_to_numpy(v) for v in variables])
    for mine, theirs, before in zip(*finals, start):
        assert np.abs(theirs - before).max() > 1e-3  # the steps moved the weights
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
