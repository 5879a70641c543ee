"""airbench94's lookahead averaging and whitening-bias schedule, driven by hand on small models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cnnlab._keras import keras
from cnnlab.models import create_model
from cnnlab.training.airbench_callbacks import Lookahead, WhiteningBiasSchedule, airbench94_callbacks


def _tiny_model():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.BatchNormalization(momentum=0.5), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v), dtype=np.float64) for v in model.weights]


def test_lookahead_matches_the_hand_computed_average_of_real_training_steps():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 3, 32)
    model = _tiny_model()
    lookahead = Lookahead(start_epoch=1, every=5)
    lookahead.set_model(model)
    state = SimpleNamespace(step=0, epoch=0, total_steps=40)
    lookahead.on_train_begin(state)
    after_step = {}
    for step in range(1, 16):
        state.epoch = 0 if step <= 5 else 1  # epoch 0 is steps 1-5: no averaging there, even at step 5
        model.train_on_batch(x, y)
        state.step = step
        after_step[step] = _weights(model)
        lookahead.on_step_end(state)
        if step <= 10:  # before the first update the network is left alone (step 10 starts the average)
            for got, expected in zip(_weights(model), after_step[step]):
                np.testing.assert_array_equal(got, expected)
    assert lookahead.average is not None
    # step 10 copied the weights; step 15: average = rho x weights(10) + (1 - rho) x weights(15)
    rho = 0.95**5 * (15 / 40) ** 3
    for got, w10, w15 in zip(_weights(model), after_step[10], after_step[15]):
        np.testing.assert_allclose(got, rho * w10 + (1 - rho) * w15, rtol=1e-5, atol=1e-7)
    moving_mean = [i for i, v in enumerate(model.weights) if "moving_mean" in v.path][0]
    assert not np.allclose(after_step[10][moving_mean], after_step[15][moving_mean])  # BN statistics averaged too
    averaged = _weights(model)

    # two more steps, then the epoch ends: the network goes back to the average
    for step in (16, 17):
        model.train_on_batch(x, y)
        state.step = step
        lookahead.on_step_end(state)
    assert not np.allclose(_weights(model)[0], averaged[0])
    lookahead.on_epoch_end(state)
    for got, expected in zip(_weights(model), averaged):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_lookahead_after_a_chunk_of_steps_updates_once_per_multiple_crossed():
    model = _tiny_model()
    lookahead = Lookahead(start_epoch=0, every=5)
    lookahead.set_model(model)
    state = SimpleNamespace(step=0, epoch=0, total_steps=20)
    lookahead.on_train_begin(state)
    state.step = 4
    lookahead.on_chunk_end(state)
    assert lookahead.average is None
    state.step = 8  # crossed 5: the average starts
    lookahead.on_chunk_end(state)
    assert lookahead.average is not None
    saved = lookahead.get_state()
    resumed = Lookahead(start_epoch=0, every=5)
    resumed.set_model(model)
    resumed.set_state(saved)
    for a, b in zip(resumed.average, lookahead.average):
        np.testing.assert_array_equal(a, b)
    assert resumed.last_step == 8 and lookahead.step_multiple == 5


def test_whitening_bias_trains_for_three_epochs_then_stays_put():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 16, 16, 3)).astype("float32"), np.arange(16) % 4
    model = create_model("airbench", (16, 16, 3), 4, widths=(8, 8, 8), logit_scale=1.0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    lookahead, schedule = airbench94_callbacks(model)
    assert isinstance(schedule, WhiteningBiasSchedule) and lookahead.model is model
    bias = model.get_layer("whiten").bias

    def trainable():
        return bias.path in [v.path for v in model.trainable_variables]

    assert schedule.on_train_begin(SimpleNamespace(step=0, epoch=0, total_steps=100)) is False  # already trainable
    for epoch in range(3):
        assert schedule.on_epoch_begin(SimpleNamespace(step=0, epoch=epoch, total_steps=100)) is False
        assert trainable()
    before = np.array(bias.numpy())
    model.train_on_batch(x, y)
    assert not np.allclose(bias.numpy(), before)  # it learns in epochs 0-2

    assert schedule.on_epoch_end(SimpleNamespace(step=3, epoch=2, total_steps=100)) is True  # epoch 3 is next
    assert not trainable()
    model.make_train_function(force=True)  # the returned True: trace the step again
    frozen, other = np.array(bias.numpy()), np.array(model.get_layer("fc").kernel.numpy())
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(bias.numpy(), frozen)
    assert not np.allclose(model.get_layer("fc").kernel.numpy(), other)
    assert schedule.on_epoch_begin(SimpleNamespace(step=4, epoch=3, total_steps=100)) is False  # no change

    # a run resumed in epoch 1 trains the bias again
    assert schedule.on_train_begin(SimpleNamespace(step=1, epoch=1, total_steps=100)) is True
    assert trainable()
