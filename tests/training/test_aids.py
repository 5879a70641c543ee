"""Training aids: --ema, --clip-norm, --class-weight, --sampler balanced, lr-find, fine-tuning flags.

Each test would fail if its feature did nothing: the moving average is compared with one computed
by hand, clipping bounds the update of a huge gradient, the weighted loss is the hand-weighted mean,
the balanced sampler's class counts are even on a skewed set, lr-find's losses follow the rate.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cnnlab.errors import ConfigError, ModelError
from cnnlab.training.config import LEGACY_VALUES, TrainConfig, resolve_config
from tests.conftest import assert_clean_error, require_data, run_cli

NEW_OPTIONS = {
    "ema": 0.0,
    "clip_norm": 0.0,
    "class_weight": "",
    "sampler": "shuffle",
    "init_from": "",
    "freeze": "",
    "unfreeze_at": 0,
    "backbone_lr_mult": 1.0,
    "l2_sp": 0.0,
    "lookahead": "off",
    "whiten_bias_epochs": 0,
}


def _engine(model="lenet5", shape=(32, 32, 1), classes=10, level="keras", seed=3, **options):
    from cnnlab._keras import keras
    from cnnlab.training.engines import make_engine

    keras.utils.set_random_seed(seed)
    config = TrainConfig(
        model=model,
        dataset="arrays",
        batch_size=8,
        precision="float32",
        split_batch=1,
        backend="tensorflow",
        level=level,
        **options,
    )
    return make_engine(config, shape, classes, total_steps=100)


def _batches(steps=3, n=8, shape=(32, 32, 1), classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((steps, n, *shape), dtype=np.float32), rng.integers(0, classes, (steps, n))


# ----------------------------------------------------------------------------- the option schema


def test_every_new_option_is_off_for_older_runs_and_by_default():
    assert {k: LEGACY_VALUES[k] for k in NEW_OPTIONS} == NEW_OPTIONS
    defaults = TrainConfig()
    assert {k: getattr(defaults, k) for k in NEW_OPTIONS} == NEW_OPTIONS


@pytest.mark.parametrize(
    "options, needle",
    [
        (dict(level="scratch", ema=0.99), "--ema: not available at level scratch"),
        (dict(level="scratch", clip_norm=1.0), "--clip-norm: not available at level scratch"),
        (dict(level="lowlevel", class_weight="balanced"), "--class-weight: not available at level lowlevel"),
        (dict(level="lowlevel", freeze="backbone"), "--freeze: not available at level lowlevel"),
        (dict(unfreeze_at=2), "--unfreeze-at: needs --freeze"),
        (dict(freeze="backbone", backbone_lr_mult=0.1), "--backbone-lr-mult: needs --freeze and --unfreeze-at"),
        (dict(ema=1.0), "--ema: expected 0 (off) or a decay in (0, 1)"),
        (dict(class_weight="0=1,x=2"), "--class-weight: expected balanced or CLASS=WEIGHT pairs"),
        (dict(freeze="half"), "--freeze: expected backbone, until:LAYER or a number of layers N"),
        (dict(sampler="balanced", shuffle=False), "--sampler balanced"),
        (dict(l2_sp=0.1), "--l2-sp: needs --init-from"),
        (dict(l2_sp=-0.1, init_from="run"), "--l2-sp"),
    ],
)
def test_options_a_level_cannot_do_are_one_line_errors(options, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        resolve_config(model="lenet5", dataset="mnist", steps=1, **options)


def test_class_weight_spellings_are_stored_in_one_form():
    config = resolve_config(model="lenet5", dataset="mnist", steps=1, class_weight="1=2.5, 0=1")
    assert config.class_weight == "0=1.0,1=2.5"
    assert (
        resolve_config(model="lenet5", dataset="mnist", steps=1, class_weight={"0": 1, "1": 2.5}).class_weight
        == "0=1.0,1=2.5"
    )


def test_cli_refuses_ema_at_level_scratch_in_one_line(tmp_path):
    proc = run_cli(
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "mnist",
        "--steps",
        "1",
        "--level",
        "scratch",
        "--ema",
        "0.99",
        "--runs-dir",
        tmp_path,
    )
    assert_clean_error(proc, "--ema", "scratch")
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- --ema


def _hand_average(engine, xs, ys, decay):
    """Keras's documented rule: after step 1 average = weight; then average = d * average + (1 - d) * weight."""
    average = None
    for x, y in zip(xs, ys):
        engine.train_batch(x, y)
        weights = [np.asarray(w, dtype=np.float64) for w in _raw_weights(engine)]
        average = weights if average is None else [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    return average, weights


def _raw_weights(engine):
    if engine.level == "keras":
        return [v.numpy() for v in engine.model.weights]
    return engine.net.get_weights()


@pytest.mark.parametrize("level", ["keras", "lowlevel"])
def test_ema_weights_are_the_hand_computed_average_of_three_steps(level):
    decay = 0.8
    engine = _engine(level=level, optimizer="sgd", lr=0.1, ema=decay)
    xs, ys = _batches()
    average, raw = _hand_average(engine, xs, ys, decay)
    exported = engine.keras_model().get_weights()  # what validation, checkpoints and model.keras use
    assert len(exported) == len(average)
    for got, want, now in zip(exported, average, raw):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert np.abs(got - now).max() > 1e-4  # the averaged weights are not the raw ones
    # Training goes on from the raw weights: they were not overwritten by the averages.
    for now, w in zip(raw, _raw_weights(engine)):
        np.testing.assert_array_equal(now, w)
    # Inference (validation) uses the averaged weights too.
    twin_logits = engine.keras_model().predict_on_batch(xs[0])
    np.testing.assert_allclose(engine.logits(xs[0]), twin_logits, rtol=1e-4, atol=1e-5)


@pytest.fixture
def mnist_env():
    return {"CNNLAB_DATA_DIR": str(require_data("mnist", "train-images-idx3-ubyte.gz").parents[1])}


EMA_RUN = dict(
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
    ema=0.9,
    clip_norm=5.0,
    seed=4,
    steps=25,
    steps_per_execution=1,
    verbose=False,
)


def test_ema_run_interrupted_mid_epoch_then_resumed_ends_bit_for_bit_like_the_uninterrupted_one(
    tmp_path, mnist_env, monkeypatch
):
    """The moving averages live in the optimizer's variables, which every checkpoint stores. A real
    Ctrl-C (SIGINT) at step 13, inside epoch 2, then --resume; all in one process, so TensorFlow's
    thread layout is the same for both runs."""
    import signal

    from cnnlab.training import Run, train
    from cnnlab.training.callbacks import Callback
    from cnnlab.training.loop import TrainingInterrupted

    monkeypatch.setenv("CNNLAB_DATA_DIR", mnist_env["CNNLAB_DATA_DIR"])

    class CtrlC(Callback):
        def on_chunk_end(self, trainer, logs):
            if trainer.state.step == 13:
                os.kill(os.getpid(), signal.SIGINT)

    whole = train(**EMA_RUN, runs_dir=tmp_path, name="whole")
    with pytest.raises(TrainingInterrupted):
        train(**EMA_RUN, runs_dir=tmp_path, name="part", callbacks=[CtrlC()])
    pointer = json.loads((tmp_path / "part" / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == 13 and pointer["batch"] == 3  # inside epoch 2
    train(resume=tmp_path / "part", verbose=False)
    a, b = Run.load(whole.path), Run.load(tmp_path / "part")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a.history) == strip(b.history) and len(a.history) == 3  # 10 steps per epoch
    assert a.metrics["loss"] == b.metrics["loss"] and a.metrics["accuracy"] == b.metrics["accuracy"]
    for x, y in zip(a.model().get_weights(), b.model().get_weights()):
        np.testing.assert_array_equal(x, y)
    # The final model holds the averages, not the raw weights the checkpoint trains on.
    state = np.load(next((whole.path / "checkpoints").glob("ckpt-*/state.npz")))
    raw_kernel = state[sorted(k for k in state.files if k.startswith("model/"))[0]]
    final_kernel = a.model().get_weights()[0]
    assert raw_kernel.shape == final_kernel.shape and not np.array_equal(raw_kernel, final_kernel)


# ----------------------------------------------------------------------------- --clip-norm


def test_clip_norm_bounds_the_update_of_a_huge_gradient():
    xs, ys = _batches(steps=1, shape=(28, 28, 1))
    xs = xs * 1e4  # a huge learning signal: the logits' gradient is scaled by 10,000

    def update_norm(**options):
        engine = _engine(model="softmax", shape=(28, 28, 1), optimizer="sgd", lr=1.0, **options)
        before = [w.copy() for w in engine.model.get_weights()]
        engine.train_batch(xs[0], ys[0])
        return np.sqrt(sum(((w - b) ** 2).sum() for w, b in zip(engine.model.get_weights(), before)))

    assert update_norm() > 10.0
    assert update_norm(clip_norm=0.01) == pytest.approx(0.01, rel=1e-3)  # lr 1 x the clipped global norm


# ----------------------------------------------------------------------------- --class-weight, --sampler


def test_balanced_class_weights_follow_scikit_learn():
    from cnnlab.training.sampling import class_weights

    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    weights = class_weights("balanced", y, 3)
    np.testing.assert_allclose(weights, [100 / (3 * 60), 100 / (3 * 30), 100 / (3 * 10)], rtol=1e-6)
    sklearn = pytest.importorskip("sklearn.utils.class_weight")
    np.testing.assert_allclose(weights, sklearn.compute_class_weight("balanced", classes=np.arange(3), y=y), rtol=1e-6)
    np.testing.assert_array_equal(class_weights("2=2.5", y, 3), [1, 1, 2.5])
    with pytest.raises(ConfigError, match="class 5 is outside"):
        class_weights("5=2", y, 3)


@pytest.mark.parametrize("split", [1, 2])
def test_the_loss_of_a_weighted_batch_is_the_hand_weighted_mean(split):
    from cnnlab.training.sampling import class_weights

    xs, ys = _batches(steps=1, shape=(28, 28, 1), n=10)
    weights = class_weights("0=0.5,3=2.5,7=4", ys[0], 10)
    engine = _engine(model="softmax", shape=(28, 28, 1), optimizer="sgd", lr=1e-3, class_weight="0=0.5,3=2.5,7=4")
    engine.split = split
    engine.set_class_weights(weights)
    logits = engine.logits(xs[0]).astype(np.float64)  # softmax: no dropout, training = inference forward
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    per_image = -log_p[np.arange(10), ys[0]]
    loss, _ = engine.train_steps(xs, ys)
    assert loss == pytest.approx(float(np.mean(weights[ys[0]] * per_image)), rel=1e-5)
    assert loss != pytest.approx(float(per_image.mean()), rel=1e-3)  # the weights changed it


def test_balanced_sampler_draws_classes_evenly_and_deterministically():
    from cnnlab.data.splits import batch_indices
    from cnnlab.training.sampling import balanced_batch_indices

    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    batches = balanced_batch_indices(y, 64, seed=5, epoch=2)
    assert len(batches) == len(list(batch_indices(1000, 64, shuffle=True))) == 16
    counts = np.bincount(y[np.concatenate(batches)], minlength=3)
    assert counts.sum() == 1000 and counts.max() - counts.min() <= 1  # 334 / 333 / 333, against 900 / 90 / 10
    again = balanced_batch_indices(y, 64, seed=5, epoch=2)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = balanced_batch_indices(y, 64, seed=5, epoch=3)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))


def test_training_with_class_weights_and_the_balanced_sampler(tmp_path):
    """In memory: both options reach the run (config.json records the weights)."""
    from cnnlab.data import Dataset, Split
    from cnnlab.training import train

    rng = np.random.default_rng(0)
    y = np.array([0] * 90 + [1] * 10)
    x = (rng.random((100, 12, 12, 1)) * 60 + y[:, None, None, None] * 120).astype(np.uint8)
    data = Dataset("arrays", Split(x, y), Split(x[:20], y[:20]), None, ["a", "b"])
    run = train(
        "softmax",
        data,
        steps=10,
        batch_size=10,
        class_weight="balanced",
        sampler="balanced",
        lr=0.1,
        optimizer="sgd",
        runs_dir=tmp_path,
        name="imbalanced",
        verbose=False,
    )
    assert run.config["class_weights"] == pytest.approx([100 / 180, 100 / 20])
    assert run.config["train"]["sampler"] == "balanced"


# ----------------------------------------------------------------------------- lr-find


def test_lr_find_suggests_a_rate_inside_the_range_and_writes_only_its_files(tmp_path, mnist_env, monkeypatch):
    from cnnlab.training.lr_find import lr_find

    monkeypatch.setenv("CNNLAB_DATA_DIR", mnist_env["CNNLAB_DATA_DIR"])
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "finder"
    result = lr_find(
        "lenet5",
        "mnist",
        pad=2,
        max_train_samples=1000,
        batch_size=32,
        optimizer="sgd",
        start_lr=1e-4,
        end_lr=100.0,
        num_steps=60,
        out=out,
        verbose=False,
    )
    assert np.isfinite(result.suggested) and 1e-4 <= result.suggested <= 100.0
    assert (out / "lr-find.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finder"]  # no run folder, nothing else
    assert sorted(p.name for p in out.iterdir()) == ["lr-find.json", "lr-find.png"]
    saved = json.loads((out / "lr-find.json").read_text())
    assert saved["suggested"] == result.suggested and len(saved["losses"]) == len(result.rates)
    rates, losses = np.array(result.rates), np.array(result.losses)
    assert np.all(np.diff(np.log(rates)) > 0)  # an exponential ramp
    # The losses follow the rate: learning at moderate rates, blowing up at the largest.
    low = losses[rates < 1e-3].mean()
    assert losses.min() < low - 0.05
    assert result.stopped_early or losses[-5:].mean() > losses.min() + 0.5


def test_lr_find_cli_takes_the_train_options(tmp_path, mnist_env):
    proc = run_cli(
        "lr-find",
        "--model",
        "softmax",
        "--dataset",
        "mnist",
        "--max-train-samples",
        "300",
        "--batch-size",
        "30",
        "--steps",
        "12",
        "--optimizer",
        "sgd",
        "--out",
        tmp_path / "f",
        "-q",
        env=mnist_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "suggested learning rate" in proc.stdout and (tmp_path / "f" / "lr-find.png").is_file()
    bad = run_cli(
        "lr-find",
        "--model",
        "softmax",
        "--dataset",
        "mnist",
        "--start-lr",
        "1",
        "--end-lr",
        "0.1",
        "--out",
        tmp_path / "g",
        env=mnist_env,
    )
    assert_clean_error(bad, "--start-lr")


# ----------------------------------------------------------------------------- fine-tuning


def test_load_weights_by_name_copies_matching_layers_and_replaces_a_head_of_another_size(tmp_path):
    from cnnlab.models import create_model
    from cnnlab.models.transfer import load_weights_by_name, weighted_layers

    source = create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)
    source.save(tmp_path / "source.keras")
    source.save_weights(tmp_path / "source.weights.h5")
    for path in (tmp_path / "source.keras", tmp_path / "source.weights.h5", source):
        target = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
        head_before = [w.copy() for w in weighted_layers(target)[-1].get_weights()]
        report = load_weights_by_name(target, path)
        layers = weighted_layers(target)
        assert [name for name, _ in report.unmatched] == [layers[-1].name]
        assert report.matched == [layer.name for layer in layers[:-1]]
        for mine, theirs in zip(layers[:-1], weighted_layers(source)[:-1]):
            for a, b in zip(mine.get_weights(), theirs.get_weights()):
                np.testing.assert_array_equal(a, b)
        for a, b in zip(layers[-1].get_weights(), head_before):  # the new head keeps its initialisation
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="no such run folder"):
        load_weights_by_name(target, tmp_path / "missing.keras")


def _bn_stats(model):
    from cnnlab._keras import keras
    from cnnlab.models.transfer import weighted_layers

    return {
        layer.name: [w.copy() for w in layer.get_weights()]
        for layer in weighted_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def _refused_on_jax():
    """--freeze on JAX is a one-line error (Keras's JAX optimizer updates every variable it was built with)."""
    from cnnlab._keras import keras

    if keras.backend.backend() != "jax":
        return False
    with pytest.raises(ConfigError, match="--freeze: not available on the JAX backend"):
        _engine(freeze="backbone")
    return True


def test_a_frozen_backbone_keeps_its_weights_and_batch_norm_statistics_then_unfreezes():
    from cnnlab.models.transfer import weighted_layers

    if _refused_on_jax():
        return

    engine = _engine(
        model="resnet20",
        shape=(16, 16, 3),
        classes=4,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        freeze="backbone",
        unfreeze_at=2,
    )
    xs, ys = _batches(steps=2, shape=(16, 16, 3), classes=4)
    xs = xs * 3 + 1  # statistics far from the initial moving mean 0 / variance 1
    layers = weighted_layers(engine.model)
    assert engine.frozen == [layer.name for layer in layers[:-1]]
    before = [w.copy() for w in engine.model.get_weights()]
    stats = _bn_stats(engine.model)
    assert stats
    engine.train_steps(xs, ys)
    for name, values in _bn_stats(engine.model).items():
        for a, b in zip(values, stats[name]):
            np.testing.assert_array_equal(a, b)  # moving mean / variance untouched: inference mode
    after = engine.model.get_weights()
    changed = [not np.array_equal(a, b) for a, b in zip(after, before)]
    head = len(layers[-1].weights)
    assert all(changed[-head:]) and not any(changed[:-head])
    assert engine.unfreeze() and not engine.unfreeze()
    engine.train_steps(xs, ys)
    assert any(
        not np.array_equal(a, b)
        for name, values in _bn_stats(engine.model).items()
        for a, b in zip(values, stats[name])
    )


def test_backbone_lr_mult_scales_the_unfrozen_backbone_update():
    if _refused_on_jax():
        return
    xs, ys = _batches(steps=1, shape=(28, 28, 1))

    def deltas(mult):
        engine = _engine(
            model="lenet5", shape=(28, 28, 1), optimizer="sgd", lr=0.1, freeze="2", unfreeze_at=1, backbone_lr_mult=mult
        )
        engine.unfreeze()
        before = [w.copy() for w in engine.model.get_weights()]
        engine.train_steps(xs, ys)
        return [a - b for a, b in zip(engine.model.get_weights(), before)]

    full, tenth = deltas(1.0), deltas(0.1)
    for i, (a, b) in enumerate(zip(full, tenth)):
        expected = 0.1 if i < 4 else 1.0  # the first two layers' kernels and biases are the backbone
        np.testing.assert_allclose(b, expected * a, rtol=1e-4, atol=1e-8)


def test_init_from_a_run_folder_with_another_class_count(tmp_path):
    """--init-from RUN in a training run: the log says what matched; a head of another size starts afresh."""
    from cnnlab.data import Dataset, Split
    from cnnlab.training import train

    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8)

    def data(classes):
        return Dataset("arrays", Split(x, rng.integers(0, classes, 40)), None, None, [str(i) for i in range(classes)])

    common = dict(pad=2, steps=1, batch_size=20, runs_dir=tmp_path, verbose=False)
    first = train("lenet5", data(10), name="first", **common)
    train("lenet5", data(3), init_from=str(first.path), name="second", **common)
    log = (tmp_path / "second" / "train.log").read_text()
    assert "loaded 4 of 5 layers with weights" in log
    with pytest.raises(ConfigError, match="no layer of .* matches"):
        train("softmax", data(3), init_from=str(first.path), name="third", **common)
    assert not (tmp_path / "third").exists()
    # lr-find from a run leaves the run folder as it was, byte for byte.
    from cnnlab.training.lr_find import lr_find

    def files(folder):
        return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    before = files(first.path)
    lr_find(
        "lenet5",
        data(3),
        pad=2,
        batch_size=20,
        init_from=str(first.path),
        num_steps=5,
        out=tmp_path / "lrf",
        verbose=False,
    )
    assert files(first.path) == before


def test_init_from_a_run_on_other_classes_starts_a_fresh_head(tmp_path):
    """Same class count, other classes: the head is not loaded (it would map one class onto another);
    the same classes: every layer is loaded, the head included."""
    from cnnlab.data import Dataset, Split
    from cnnlab.training import train

    rng = np.random.default_rng(3)
    x = rng.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8)

    def data(names):
        return Dataset("arrays", Split(x, rng.integers(0, 3, 40)), None, None, list(names))

    common = dict(pad=2, steps=1, batch_size=20, runs_dir=tmp_path, verbose=False)
    first = train("lenet5", data("abc"), name="first", **common)
    head = first.model().layers[-1].get_weights()[0]

    # Another seed, so that a fresh head's initial weights are not the first run's initial weights.
    other = train("lenet5", data("xyz"), init_from=str(first.path), name="other", seed=1, **common)
    log = (tmp_path / "other" / "train.log").read_text()
    assert "loaded 4 of 5 layers" in log and "trained on other classes (a, b, c)" in log
    same = train("lenet5", data("abc"), init_from=str(first.path), name="same", seed=1, **common)
    assert "loaded 5 of 5 layers" in (tmp_path / "same" / "train.log").read_text()
    # One step moves a loaded head a little; a fresh head is somewhere else entirely.
    moved = np.abs(same.model().layers[-1].get_weights()[0] - head).max()
    fresh = np.abs(other.model().layers[-1].get_weights()[0] - head).max()
    assert moved < fresh / 10, (moved, fresh)


def test_l2_sp_decays_anchored_weights_toward_their_values_and_the_others_toward_zero():
    """One update with zero gradients is the decay alone: ``w - rate x alpha x (w - w0)`` for an
    anchored weight, Keras's ``w - rate x weight_decay x w`` for the others."""
    from cnnlab._keras import keras
    from cnnlab.training.optim import decay_towards

    anchored = keras.Variable(np.full(3, 2.0, dtype="float32"))
    other = keras.Variable(np.full(3, 2.0, dtype="float32"))
    optimizer = keras.optimizers.SGD(0.1, weight_decay=0.01)
    optimizer.build([anchored, other])
    statistic = keras.Variable(np.zeros(3, dtype="float32"), trainable=False)  # not the optimizer's
    assert decay_towards(optimizer, [anchored, statistic], alpha=0.5) == 1
    anchored.assign(np.full(3, 3.0, dtype="float32"))  # moved away from the anchor 2.0
    zeros = [keras.ops.zeros(3), keras.ops.zeros(3)]
    optimizer.apply(zeros, [anchored, other])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(anchored), 3.0 - 0.1 * 0.5 * (3.0 - 2.0), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(other), 2.0 - 0.1 * 0.01 * 2.0, rtol=1e-6)
    # without weight decay the anchored weights are still pulled
    plain = keras.optimizers.SGD(0.1)
    plain.build([anchored])
    decay_towards(plain, [anchored], alpha=1.0)  # anchor: 2.95
    anchored.assign(np.full(3, 3.95, dtype="float32"))
    plain.apply([keras.ops.zeros(3)], [anchored])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(anchored), 3.95 - 0.1 * 1.0, rtol=1e-6)


def test_l2_sp_keeps_a_fine_tuned_backbone_near_the_loaded_weights_and_survives_resume(tmp_path):
    """--init-from RUN --l2-sp in real runs on a folder of images: the loaded layers end nearer their
    loaded values than without it, and a run stopped after two epochs then resumed (which loads the
    values to pull toward again, then restores its checkpoint) ends with the weights of the run
    that went through."""
    from PIL import Image

    from cnnlab.data import Dataset, Split
    from cnnlab.training import Run, train

    rng = np.random.default_rng(5)
    x = rng.integers(0, 255, (60, 28, 28, 1), dtype=np.uint8)
    folder = tmp_path / "images"
    for i, image in enumerate(x):
        (folder / "abc"[i % 3]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / "abc"[i % 3] / f"{i}.png")
    ten = Dataset("arrays", Split(x, rng.integers(0, 10, 60)), None, None, [str(i) for i in range(10)])
    common = dict(pad=2, batch_size=16, optimizer="sgd", lr=0.2, seed=2, runs_dir=tmp_path, verbose=False)
    source = train("lenet5", ten, steps=2, name="source", **common)
    loaded = source.model().get_weights()[:-2]  # every layer but the head

    def distance(run):
        return np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(run.model().get_weights()[:-2], loaded)))

    tune = dict(init_from=str(source.path), **common)
    free = train("lenet5", f"folder:{folder}", name="free", epochs=4, **tune)
    pulled = train("lenet5", f"folder:{folder}", name="pulled", epochs=4, l2_sp=2.0, **tune)
    assert distance(pulled) < 0.8 * distance(free), (distance(pulled), distance(free))
    assert "decay toward their loaded values" in (tmp_path / "pulled" / "train.log").read_text()
    train("lenet5", f"folder:{folder}", name="half", epochs=2, l2_sp=2.0, **tune)
    train(resume=tmp_path / "half", epochs=4, verbose=False)
    for a, b in zip(Run.load(tmp_path / "half").model().get_weights(), pulled.model().get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unfreeze_at_trains_the_frozen_layers_from_that_epoch(tmp_path):
    """--freeze backbone --unfreeze-at 2 in a run: epoch 1 leaves the backbone as it started, epoch 2 trains it."""
    from cnnlab._keras import keras
    from cnnlab.data import Dataset, Split
    from cnnlab.training import train
    from cnnlab.training.callbacks import Callback

    if keras.backend.backend() == "jax":
        pytest.skip("--freeze is refused on JAX (tested above)")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8)
    data = Dataset("arrays", Split(x, rng.integers(0, 3, 40)), None, None, ["a", "b", "c"])

    class Kernels(Callback):
        def __init__(self):
            self.first = []

        def on_epoch_begin(self, trainer):
            self.first.append(trainer.engine.model.get_weights()[0].copy())

        def on_train_end(self, trainer):
            self.first.append(trainer.engine.model.get_weights()[0].copy())

    seen = Kernels()
    train(
        "lenet5",
        data,
        pad=2,
        epochs=2,
        batch_size=20,
        optimizer="sgd",
        lr=0.1,
        freeze="backbone",
        unfreeze_at=2,
        backbone_lr_mult=0.5,
        runs_dir=tmp_path,
        name="ft",
        verbose=False,
        callbacks=[seen],
    )
    start, after_epoch_1, end = seen.first
    np.testing.assert_array_equal(start, after_epoch_1)  # frozen during epoch 1
    assert not np.array_equal(after_epoch_1, end)  # trained in epoch 2
    log = (tmp_path / "ft" / "train.log").read_text()
    assert "4 layers frozen" in log and "epoch 2: 4 frozen layers now train (rate x 0.5)" in log
