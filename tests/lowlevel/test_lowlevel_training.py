"""Level 2 training: explicit gradients, the step, the loop, checkpoints, tntrung's softmax regression."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import lowlevel
from cnnlab._keras import keras
from cnnlab.errors import ConfigError, RunError
from tests.lowlevel.lowlevel_data import lenet_batch, mnist  # noqa: F401  (fixtures)


def test_sgd_step_is_w_minus_lr_times_gradient(lenet_batch):
    x, y = lenet_batch
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    before = net.get_weights()
    _, _, grads = lowlevel.gradients(net, x, y, training=False)
    grads = [keras.ops.convert_to_numpy(g) for g in grads]
    lowlevel.train_step(net, lowlevel.SGD(0.1), x, y, training=False)
    for w0, g, w1 in zip(before, grads, net.get_weights()):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-6, atol=1e-7)
    assert any(np.abs(g).max() > 0 for g in grads)


def test_gradient_matches_a_finite_difference(lenet_batch):
    """d loss / d b for the output bias, against (L(b + h) - L(b - h)) / 2h."""
    x, y = lenet_batch
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    _, _, grads = lowlevel.gradients(net, x, y, training=False)
    analytic = keras.ops.convert_to_numpy(grads[-1])
    weights, h = net.get_weights(), 1e-2
    numeric = []
    for k in range(10):
        losses = []
        for sign in (1, -1):
            shifted = [w.copy() for w in weights]
            shifted[-1][k] += sign * h
            net.set_weights(shifted)
            losses.append(lowlevel.evaluate(net, x, y)["loss"])
        numeric.append((losses[0] - losses[1]) / (2 * h))
    np.testing.assert_allclose(analytic, numeric, atol=2e-4)


def test_training_lowers_the_loss_on_real_mnist(lenet_batch):
    x, y = lenet_batch
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    optimizer = keras.optimizers.Adam(1e-3)
    first = lowlevel.evaluate(net, x, y)
    for _ in range(15):
        loss, accuracy = lowlevel.train_step(net, optimizer, x, y)
        assert np.isfinite(loss) and 0 <= accuracy <= 1
    after = lowlevel.evaluate(net, x, y)
    assert after["loss"] < first["loss"] - 0.3
    assert after["accuracy"] > first["accuracy"]


def test_fit_runs_exact_steps_and_reports_history(lenet_batch):
    x, y = lenet_batch
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    lines = []
    history = lowlevel.fit(
        net, lowlevel.SGD(0.05), x, y, batch_size=16, steps=6, seed=1, validation=(x[:16], y[:16]), log=lines.append
    )
    assert [row["step"] for row in history] == [4, 6]  # 64 images = 4 batches per epoch
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[-1])
    assert len(lines) == 2 and "val_accuracy=" in lines[-1]
    logits = lowlevel.predict_logits(net, x)
    assert logits.shape == (64, 10) and logits.dtype == np.float32


def test_batches_depend_only_on_seed_and_epoch():
    a = lowlevel.training.batch_indices(10, 4, seed=3, epoch=1)
    b = lowlevel.training.batch_indices(10, 4, seed=3, epoch=1)
    c = lowlevel.training.batch_indices(10, 4, seed=3, epoch=2)
    assert [list(i) for i in a] == [list(i) for i in b] != [list(i) for i in c]
    assert sorted(np.concatenate(a)) == list(range(10)) and [len(i) for i in a] == [4, 4, 2]


def test_bad_batches_are_clear_errors(lenet_batch):
    x, y = lenet_batch
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    with pytest.raises(ConfigError, match=r"images of shape \(64, 28, 28, 1\); expected \(N, 32, 32, 1\)"):
        lowlevel.train_step(net, lowlevel.SGD(0.1), x[:, 2:30, 2:30], y)
    with pytest.raises(ConfigError, match="labels must lie in 0..9"):
        lowlevel.train_step(net, lowlevel.SGD(0.1), x, y + 5)
    with pytest.raises(ConfigError, match="expected 64 integers"):
        lowlevel.train_step(net, lowlevel.SGD(0.1), x, y[:10])


def test_checkpoint_round_trip_resumes_exactly(lenet_batch, tmp_path):
    """Train 2 steps, save, train 2 more; a restored copy training the same 2 steps ends equal."""
    x, y = lenet_batch
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    optimizer = keras.optimizers.Adam(1e-3)
    for _ in range(2):
        lowlevel.train_step(net, optimizer, x, y, training=False)
    path = lowlevel.save_checkpoint(net, tmp_path / "ckpt" / "latest.npz", optimizer, step=2)
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temporary file left
    for _ in range(2):
        lowlevel.train_step(net, optimizer, x, y, training=False)

    restored = lowlevel.build("lenet5", (32, 32, 1), 10, seed=99)
    restored_optimizer = keras.optimizers.Adam(1e-3)
    meta = lowlevel.load_checkpoint(restored, path, restored_optimizer)
    assert meta["step"] == 2 and meta["name"] == "lenet5" and meta["optimizer"] == "Adam"
    assert int(keras.ops.convert_to_numpy(restored_optimizer.iterations)) == 2
    for _ in range(2):
        lowlevel.train_step(restored, restored_optimizer, x, y, training=False)
    for a, b in zip(net.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    with np.load(path) as archive:  # a plain NumPy archive, readable without cnnlab
        assert "var/000/conv_1/weights" in archive.files and archive["var/000/conv_1/weights"].shape == (5, 5, 1, 6)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    with pytest.raises(RunError, match="checkpoint not found"):
        lowlevel.load_checkpoint(net, tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(RunError, match="not a cnnlab low-level checkpoint"):
        lowlevel.load_checkpoint(net, garbage)
    softmax = lowlevel.build("softmax", (28, 28, 1), 10)
    lowlevel.save_checkpoint(softmax, tmp_path / "softmax.npz")
    with pytest.raises(RunError, match="checkpoint of 'softmax'; cannot load it into 'lenet5'"):
        lowlevel.load_checkpoint(net, tmp_path / "softmax.npz")
    wide = lowlevel.build("softmax", (28, 28, 1), 12)
    with pytest.raises(RunError, match=r"has shape \(784, 10\); expected \(784, 12\)"):
        lowlevel.load_checkpoint(wide, tmp_path / "softmax.npz")
    with pytest.raises(RunError, match="optimizer state of None"):
        lowlevel.load_checkpoint(softmax, tmp_path / "softmax.npz", keras.optimizers.Adam())


@pytest.mark.slow
def test_seed0_softmax_regression_reaches_91_5_percent(mnist):
    """tntrung's first example: zero init, gradient descent 0.5, 1,000 steps of 100 images."""
    x = mnist.train.x.astype("float32") / 255.0
    net = lowlevel.build("softmax", (28, 28, 1), 10, init="zeros")
    lowlevel.fit(net, lowlevel.SGD(0.5), x, mnist.train.y, batch_size=100, steps=1000, seed=0)
    scores = lowlevel.evaluate(net, mnist.test.x.astype("float32") / 255.0, mnist.test.y)
    print(f"seed 0 softmax regression, low level: test accuracy {scores['accuracy']:.4f}")
    assert scores["accuracy"] >= 0.915
