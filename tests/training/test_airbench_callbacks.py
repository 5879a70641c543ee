"""airbench94's lookahead averaging and whitening-bias schedule, driven by hand on small models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cnnlab._keras import keras
from cnnlab.models import create_model
from cnnlab.training.airbench_callbacks import Lookahead, WhiteningBiasSchedule, airbench94_callbacks
from cnnlab.training.callbacks import Callback


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


# ----------------------------------------------------------------------------- in cnnlab's training loop


def _arrays_dataset(n=70, size=16, channels=1, classes=3, seed=2):
    from cnnlab.data import Dataset, Split

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, size, size, channels), dtype=np.uint8)
    return Dataset("arrays", Split(x, rng.integers(0, classes, n)), None, None, [str(c) for c in range(classes)])


class _Record(Callback):
    """A user callback recording the step of every chunk end and the weights the run ends with."""

    def __init__(self):
        self.chunk_ends = []

    def on_chunk_end(self, trainer, logs):
        self.chunk_ends.append((trainer.state.step, logs["end_of_epoch"]))

    def on_train_end(self, trainer):
        self.weights = [np.array(keras.ops.convert_to_numpy(v)) for v in trainer.engine.model.weights]


class _HandLookahead(_Record):
    """The reference: lookahead averaging written out by hand, after every single step (float64)."""

    def __init__(self, start_epoch, every):
        super().__init__()
        self.start_epoch, self.every, self.average = start_epoch, every, None

    def on_chunk_end(self, trainer, logs):
        super().on_chunk_end(trainer, logs)
        state, variables = trainer.state, [v for v in trainer.engine.model.weights if "float" in str(v.dtype)]
        if state.step % self.every == 0 and state.epoch >= self.start_epoch:
            current = [np.array(keras.ops.convert_to_numpy(v), dtype=np.float64) for v in variables]
            if self.average is None:
                self.average = current
            else:
                rho = 0.95**self.every * (state.step / state.total_steps) ** 3
                self.average = [rho * a + (1 - rho) * w for a, w in zip(self.average, current)]
                for v, a in zip(variables, self.average):
                    v.assign(a.astype("float32"))
        if logs["end_of_epoch"] and self.average is not None:
            for v, a in zip(variables, self.average):
                v.assign(a.astype("float32"))


LOOP_RUN = dict(pad=0, epochs=3, batch_size=5, optimizer="sgd", lr=0.05, momentum=0.9, seed=1, verbose=False)


def test_lookahead_in_the_loop_matches_the_hand_written_average_and_cuts_chunks_at_multiples_of_5(tmp_path):
    """14 steps per epoch, averaging from epoch 2 (step 15) every 5 steps: the loop (8 steps per
    compiled call, cut at 5, 10, 14, 15, ...) ends with the weights of a per-step loop averaging by hand."""
    from cnnlab.training import train

    data = _arrays_dataset()
    looped, hand, plain = _Record(), _HandLookahead(start_epoch=1, every=5), _Record()
    common = dict(LOOP_RUN, runs_dir=tmp_path)
    train("lenet5", data, lookahead="start=2,every=5", steps_per_execution=8, name="a", callbacks=[looped], **common)
    train("lenet5", data, steps_per_execution=1, name="b", callbacks=[hand], **common)
    train("lenet5", data, steps_per_execution=8, name="c", callbacks=[plain], **common)

    assert [step for step, _ in looped.chunk_ends] == [5, 10, 14, 15, 20, 25, 28, 30, 35, 40, 42]
    assert [step for step, _ in plain.chunk_ends][:3] == [8, 14, 22]  # without it, calls of 8 steps
    assert all(step % 5 == 0 or end for step, end in looped.chunk_ends)
    assert len(looped.weights) == len(hand.weights)
    for got, expected in zip(looped.weights, hand.weights):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    assert not np.allclose(looped.weights[0], plain.weights[0], rtol=1e-3)  # the averaging changed the run


class _Bias(_Record):
    """Records the whitening bias and the head's kernel at each epoch's start and at the end."""

    def __init__(self):
        super().__init__()
        self.bias, self.fc = [], []

    def _take(self, trainer):
        model = trainer.engine.model
        self.bias.append(np.array(keras.ops.convert_to_numpy(model.get_layer("whiten").bias)))
        self.fc.append(np.array(keras.ops.convert_to_numpy(model.get_layer("fc").kernel)))

    def on_epoch_begin(self, trainer):
        self._take(trainer)

    def on_train_end(self, trainer):
        self._take(trainer)


def test_whitening_bias_trains_in_the_first_epoch_only_and_the_step_is_traced_again(tmp_path, monkeypatch):
    """--whiten-bias-epochs 1: the bias moves in epoch 1 and stays put in epochs 2-3, while the other
    weights keep training. On TensorFlow, without the engine's retrace the step traced in epoch 1
    would go on updating it (checked too): the flag alone does not freeze a compiled step."""
    from cnnlab.training import train
    from cnnlab.training.engines import KerasEngine

    if keras.backend.backend() == "jax":
        pytest.skip("--whiten-bias-epochs is refused on JAX (tested below)")
    data = _arrays_dataset(n=40, channels=3, classes=4)

    options = dict(
        LOOP_RUN,
        batch_size=8,
        steps_per_execution=10,
        whiten_bias_epochs=1,
        model_options={"widths": [8, 8, 8], "logit_scale": 1.0},
        runs_dir=tmp_path,
    )
    seen = _Bias()
    run = train("airbench", data, name="frozen", callbacks=[seen], **options)
    start, after_1, after_2, end = seen.bias
    assert not np.array_equal(start, after_1)  # epoch 1 trains it
    np.testing.assert_array_equal(after_1, after_2)
    np.testing.assert_array_equal(after_1, end)
    assert not np.array_equal(seen.fc[1], seen.fc[3])  # the rest trains on
    assert "epoch 2: the whitening bias no longer trains" in (run.path / "train.log").read_text()

    if keras.backend.backend() != "tensorflow":
        return  # torch steps eagerly: the flag alone freezes the bias, nothing is traced
    monkeypatch.setattr(KerasEngine, "retrace", lambda self: None)
    stale = _Bias()
    train("airbench", data, name="stale", callbacks=[stale], **options)
    assert not np.array_equal(stale.bias[1], stale.bias[3])


def test_unfreezing_the_backbone_leaves_a_finished_whitening_bias_frozen(tmp_path):
    """--freeze backbone --unfreeze-at 2 with --whiten-bias-epochs 1: the bias stays put in epoch 1,
    where its layer is frozen (setting the bias's own flag would train it there), and in epochs 2-3,
    where unfreezing sets the stem trainable again but the bias's epochs are over; the backbone
    trains once unfrozen."""
    from cnnlab.training import train

    if keras.backend.backend() == "jax":
        pytest.skip("--freeze and --whiten-bias-epochs are refused on JAX")

    class Backbone(_Bias):
        def __init__(self):
            super().__init__()
            self.conv = []

        def _take(self, trainer):
            super()._take(trainer)
            kernel = trainer.engine.model.get_layer("group1_conv1").kernel
            self.conv.append(np.array(keras.ops.convert_to_numpy(kernel)))

    seen = Backbone()
    run = train(
        "airbench",
        _arrays_dataset(n=40, channels=3, classes=4),
        name="unfrozen",
        callbacks=[seen],
        **dict(
            LOOP_RUN,
            batch_size=8,
            freeze="backbone",
            unfreeze_at=2,
            whiten_bias_epochs=1,
            model_options={"widths": [8, 8, 8], "logit_scale": 1.0},
            runs_dir=tmp_path,
        ),
    )
    for bias in seen.bias[1:]:
        np.testing.assert_array_equal(seen.bias[0], bias)
    np.testing.assert_array_equal(seen.conv[0], seen.conv[1])  # frozen in epoch 1
    assert not np.array_equal(seen.conv[1], seen.conv[3])  # trains once unfrozen
    assert "frozen layers now train" in (run.path / "train.log").read_text()


LOOKAHEAD_RUN = dict(
    model="lenet5",
    dataset="mnist",
    pad=2,
    val_split=100,
    max_train_samples=200,
    max_eval_samples=100,
    batch_size=20,
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    lookahead="start=2,every=5",
    seed=4,
    steps=35,
    steps_per_execution=1,
    verbose=False,
)


def test_lookahead_run_interrupted_then_resumed_ends_bit_for_bit_like_the_uninterrupted_one(tmp_path, monkeypatch):
    """Ctrl-C at step 17 (epoch 2, the average started at step 15 and updated nowhere since), then
    --resume: the checkpoint carries the average, so the resumed run's updates at 20, 25, ... and
    its epoch-end resets are the uninterrupted run's."""
    import json
    import os
    import signal

    from cnnlab.training import Run, train
    from cnnlab.training.loop import TrainingInterrupted
    from tests.conftest import require_data

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(require_data("mnist", "train-images-idx3-ubyte.gz").parents[1]))

    class CtrlC(Callback):
        def on_chunk_end(self, trainer, logs):
            if trainer.state.step == 17:
                os.kill(os.getpid(), signal.SIGINT)

    whole = train(**LOOKAHEAD_RUN, runs_dir=tmp_path, name="whole")
    with pytest.raises(TrainingInterrupted):
        train(**LOOKAHEAD_RUN, runs_dir=tmp_path, name="part", callbacks=[CtrlC()])
    pointer = json.loads((tmp_path / "part" / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == 17
    with np.load(tmp_path / "part" / "checkpoints" / pointer["dir"] / "state.npz") as state:
        assert int(state["callback/lookahead/last_step"]) == 17
        assert any(key.startswith("callback/lookahead/average/") for key in state.files)
    train(resume=tmp_path / "part", verbose=False)
    a, b = Run.load(whole.path), Run.load(tmp_path / "part")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a.history) == strip(b.history) and len(a.history) == 4
    for x, y in zip(a.model().get_weights(), b.model().get_weights()):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"lookahead": "start=0,every=5"}, "--lookahead: expected off, on"),
        ({"lookahead": "every=5,often=2"}, "--lookahead: expected off, on"),
        ({"lookahead": "on", "level": "scratch", "optimizer": "sgd"}, "--lookahead: not available at level scratch"),
        ({"whiten_bias_epochs": 3, "level": "lowlevel"}, "--whiten-bias-epochs: not available at level lowlevel"),
    ],
)
def test_airbench_options_refused_where_they_mean_nothing(options, needle):
    from cnnlab.errors import ConfigError
    from cnnlab.training.config import resolve_config

    with pytest.raises(ConfigError, match=needle):
        resolve_config(model="lenet5", dataset="mnist", epochs=1, **options)


def test_airbench_option_spellings_are_stored_in_one_form():
    from cnnlab.training.config import TrainConfig, apply_options, lookahead_settings

    config = TrainConfig()
    assert config.lookahead == "off" and config.whiten_bias_epochs == 0
    for given, stored, settings in [
        ("on", "on", (3, 5)),
        (True, "on", (3, 5)),
        ("off", "off", None),
        ("every=2", "start=4,every=2", (3, 2)),
        (" start=1 , every=5 ", "start=1,every=5", (0, 5)),
    ]:
        apply_options(config, {"lookahead": given})
        assert config.lookahead == stored and lookahead_settings(stored) == settings


def test_whiten_bias_epochs_is_refused_on_jax_in_one_line(tmp_path):
    from cnnlab.errors import ConfigError
    from cnnlab.training import train

    if keras.backend.backend() != "jax":
        pytest.skip("the JAX backend's refusal (run with KERAS_BACKEND=jax)")
    with pytest.raises(ConfigError, match="^--whiten-bias-epochs: not available on the JAX backend"):
        train("airbench", _arrays_dataset(channels=3), whiten_bias_epochs=3, runs_dir=tmp_path, name="x", **LOOP_RUN)
    assert not (tmp_path / "x").exists()


def test_whiten_bias_epochs_needs_a_whitening_stem(tmp_path):
    from cnnlab.errors import ConfigError
    from cnnlab.training import train

    with pytest.raises(ConfigError, match="^--whiten-bias-epochs: model lenet5 has no whitening stem"):
        train("lenet5", _arrays_dataset(), whiten_bias_epochs=3, runs_dir=tmp_path, name="x", **LOOP_RUN)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("options", [{"lookahead": "on"}, {"whiten_bias_epochs": 3}])
def test_lr_find_refuses_the_airbench_options(options, tmp_path):
    from cnnlab.errors import ConfigError
    from cnnlab.training.lr_find import lr_find

    flag = "--" + next(iter(options)).replace("_", "-")
    with pytest.raises(ConfigError, match=f"^{flag}: has no meaning for lr-find"):
        lr_find("airbench", "cifar10", out=tmp_path / "lr", verbose=False, **options)
    assert not (tmp_path / "lr").exists()
