"""Sequential, the zoo, weights files and the training loop of the scratch level."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cnnlab import scratch
from cnnlab.errors import CnnlabError, ModelError
from tests.conftest import require_data

# Keras model.get_weights() shapes of the reference networks (docs/architecture.md), for 10 classes
REFERENCE_SHAPES = {
    "softmax": [(784, 10), (10,)],
    "lenet5": [(5, 5, 1, 6), (6,), (5, 5, 6, 16), (16,), (400, 120), (120,), (120, 84), (84,), (84, 10), (10,)],
    "mnist_cnn": [(5, 5, 1, 32), (32,), (5, 5, 32, 64), (64,), (1024, 1024), (1024,), (1024, 10), (10,)],
    "cifar_cnn": [(3, 3, 3, 32), (3, 3, 32, 64), (3, 3, 64, 128), (2048, 625), (625, 10)],
}


@pytest.mark.parametrize("name", sorted(REFERENCE_SHAPES))
def test_build_gives_keras_weight_order_and_shapes(name):
    net = scratch.build(name, seed=0)
    assert net.name == name
    assert [w.shape for w in net.get_weights()] == REFERENCE_SHAPES[name]
    assert net.output_shape == (10,)


def test_build_is_seeded_and_glorot_scaled():
    a, b, c = (scratch.build("lenet5", seed=s) for s in (0, 0, 1))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    kernel = a.get_weights()[4]  # dense 400 -> 120: Glorot uniform limit sqrt(6 / 520)
    assert np.abs(kernel).max() <= np.sqrt(6 / 520) and np.abs(kernel).max() > 0.9 * np.sqrt(6 / 520)
    assert not a.get_weights()[1].any()  # zero biases


def test_bad_build_arguments_are_clear_errors():
    with pytest.raises(ModelError, match="no scratch twin of 'resnet20'"):
        scratch.build("resnet20")
    with pytest.raises(ModelError, match=r"unknown option\(s\) \['dropuot'\]"):
        scratch.build("mnist_cnn", dropuot=0.1)
    with pytest.raises(CnnlabError, match="larger than the input"):
        scratch.build("lenet5", (8, 8, 1))
    with pytest.raises(ModelError, match="num_classes"):
        scratch.build("lenet5", num_classes=0)


def test_forward_checks_the_input_shape():
    net = scratch.build("lenet5")
    with pytest.raises(CnnlabError, match=r"expected input of shape \(batch, 32, 32, 1\), got \(2, 28, 28, 1\)"):
        net.forward(np.zeros((2, 28, 28, 1)))


def test_weights_round_trip_through_npz(tmp_path):
    net = scratch.build("mnist_cnn", seed=1)
    path = tmp_path / "weights.npz"
    net.save_weights(path)
    assert path.is_file() and not list(tmp_path.glob(".*tmp*"))  # written atomically, no leftovers
    other = scratch.build("mnist_cnn", seed=2)
    other.load_weights(path)
    for a, b in zip(net.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((3, 28, 28, 1))
    np.testing.assert_array_equal(net.predict_logits(x), other.predict_logits(x))


def test_loading_the_wrong_weights_is_a_clear_error(tmp_path):
    path = tmp_path / "lenet.npz"
    scratch.build("lenet5").save_weights(path)
    with pytest.raises(ModelError, match="do not fit network 'mnist_cnn'"):
        scratch.build("mnist_cnn").load_weights(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="not a readable weights .npz file"):
        scratch.build("lenet5").load_weights(garbage)


def test_input_gradient_only_when_asked():
    net = scratch.build("lenet5", dtype="float64")
    x, y = np.random.default_rng(0).random((2, 32, 32, 1)), np.array([1, 2])
    _, dlogits = scratch.softmax_cross_entropy(net.forward(x, True), y)
    assert net.backward(dlogits) is None
    net.input_gradient = True
    _, dlogits = scratch.softmax_cross_entropy(net.forward(x, True), y)
    assert net.backward(dlogits).shape == x.shape


def test_training_on_real_mnist_lowers_the_loss():
    require_data("mnist")
    from cnnlab.data import load_dataset

    data = load_dataset("mnist", require_data())
    pad = ((0, 0), (2, 2), (2, 2), (0, 0))
    x, y = data.train.x[:1000], data.train.y[:1000]
    x_test, y_test = np.pad(data.test.x[:500], pad).astype("float32") / 255, data.test.y[:500]
    net = scratch.build("lenet5", seed=0)
    before_loss, before_accuracy = net.evaluate(x_test, y_test)
    history = net.fit(
        x, y, scratch.Adam(2e-3), epochs=1, batch_size=50, validation_data=(data.test.x[:500], y_test),
        transform=lambda batch: np.pad(batch, pad).astype("float32") / 255, blas_threads=1,
    )  # fmt: skip
    after_loss, after_accuracy = net.evaluate(x_test, y_test)
    assert after_loss < before_loss and after_accuracy > before_accuracy + 0.3
    assert history[0]["val_loss"] == pytest.approx(after_loss) and history[0]["seconds"] > 0


def test_fit_order_depends_only_on_seed_and_epoch():
    x = np.random.default_rng(0).random((40, 28, 28, 1)).astype("float32")
    y = np.arange(40) % 10
    runs = []
    for _ in range(2):
        net = scratch.build("softmax", seed=0)
        net.fit(x, y, scratch.SGD(0.1, momentum=0.9), epochs=2, batch_size=8, shuffle_seed=5)
        runs.append(net.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_scratch_imports_no_framework():
    code = (
        "import sys, cnnlab.scratch as s; s.build('cifar_cnn'); "
        "loaded = [m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("make", [lambda: scratch.Adam(1e-2), lambda: scratch.SGD(0.1, momentum=0.9, nesterov=True)])
def test_optimizer_state_resumes_training_exactly(make):
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 24)
    straight, optimizer = scratch.build("softmax", seed=0), make()
    for i in range(4):
        straight.train_step(x[6 * i : 6 * i + 6], y[6 * i : 6 * i + 6], optimizer)
    first, optimizer = scratch.build("softmax", seed=0), make()
    for i in range(2):
        first.train_step(x[6 * i : 6 * i + 6], y[6 * i : 6 * i + 6], optimizer)
    resumed, restored = scratch.build("softmax", seed=9), make()
    resumed.set_weights(first.get_weights())
    restored.set_state(optimizer.get_state(), resumed.trainable_params())
    for i in range(2, 4):
        resumed.train_step(x[6 * i : 6 * i + 6], y[6 * i : 6 * i + 6], restored)
    assert restored.iterations == 4
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_resumes_from_initial_epoch_and_stops_on_request():
    x = np.random.default_rng(0).random((20, 28, 28, 1)).astype("float32")
    y = np.arange(20) % 10
    straight = scratch.build("softmax", seed=0)
    straight.fit(x, y, scratch.SGD(0.1), epochs=3, batch_size=5)
    resumed, optimizer = scratch.build("softmax", seed=0), scratch.SGD(0.1)
    first = resumed.fit(x, y, optimizer, epochs=3, batch_size=5, on_epoch_end=lambda record: record["epoch"] == 1)
    assert [r["epoch"] for r in first] == [1]
    rest = resumed.fit(x, y, optimizer, epochs=3, initial_epoch=1, batch_size=5)
    assert [r["epoch"] for r in rest] == [2, 3]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
