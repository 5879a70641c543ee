"""Level 2 networks: shapes, parameter lists, initialisers, dropout, the verbose build, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import lowlevel
from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.lowlevel import layers

SHAPES = {"softmax": (28, 28, 1), "lenet5": (32, 32, 1), "mnist_cnn": (28, 28, 1), "cifar_cnn": (32, 32, 3)}


@pytest.mark.parametrize("name", list(SHAPES))
def test_variables_match_the_keras_model(name):
    from cnnlab.models import create_model

    net = lowlevel.build(name, SHAPES[name], 10)
    model = create_model(name, input_shape=SHAPES[name], num_classes=10)
    assert [w.shape for w in net.get_weights()] == [w.shape for w in model.get_weights()]
    assert net.count_params() == model.count_params()
    logits = keras.ops.convert_to_numpy(net.forward(np.zeros((3, *SHAPES[name]), "float32")))
    assert logits.shape == (3, 10)


def test_verbose_build_prints_variables_and_tensors_like_seed_3(capsys):
    lowlevel.build("mnist_cnn", (28, 28, 1), 10, verbose=True)
    out = capsys.readouterr().out.splitlines()
    # Hsi-Pin Ma's lecture prints these shapes for the same network: conv_1 24x24x32, conv_2 8x8x64, fc_3 1024.
    assert "<Variable 'conv_1/weights' shape=(5, 5, 1, 32) dtype=float32>" in out
    assert "<Variable 'conv_1/biases' shape=(32,) dtype=float32>" in out
    assert "Tensor('conv_1/conv2d', shape=(None, 24, 24, 32), dtype=float32)" in out
    assert "Tensor('conv_2/activation', shape=(None, 8, 8, 64), dtype=float32)" in out
    assert "<Variable 'fc_3/weights' shape=(1024, 1024) dtype=float32>" in out
    assert "Tensor('fc_4/net_pre-activation', shape=(None, 10), dtype=float32)" in out
    # Variables are printed in creation order, which is Keras's get_weights() order.
    printed = [line.split("'")[1] for line in out if line.startswith("<Variable")]
    assert printed == [
        "conv_1/weights",
        "conv_1/biases",
        "conv_2/weights",
        "conv_2/biases",
        "fc_3/weights",
        "fc_3/biases",
        "fc_4/weights",
        "fc_4/biases",
    ]


def test_quiet_build_prints_nothing(capsys):
    lowlevel.build("lenet5", (32, 32, 1), 10)
    assert capsys.readouterr().out == ""


def test_initialisers_follow_the_seeds():
    seed0 = lowlevel.build("lenet5", (32, 32, 1), 10, init="truncated_normal").get_weights()
    conv_w, conv_b, fc_w = seed0[0], seed0[1], seed0[4]
    assert np.abs(conv_w).max() <= 0.2 + 1e-6  # truncated at 2 standard deviations
    assert 0.06 < fc_w.std() < 0.1  # a normal(0, 0.1) truncated at 2 sigma has std 0.088
    np.testing.assert_allclose(conv_b, 0.1)
    glorot = lowlevel.build("lenet5", (32, 32, 1), 10, init="glorot").get_weights()
    limit = np.sqrt(6 / (5 * 5 * 1 + 5 * 5 * 6))
    assert np.abs(glorot[0]).max() <= limit and np.abs(glorot[0]).max() > 0.9 * limit
    assert not glorot[1].any()
    assert not any(w.any() for w in lowlevel.build("softmax", (28, 28, 1), 10, init="zeros").get_weights())
    # tntrung's LeNet-5 code draws its dense biases with init_weight, not init_bias
    as_written = lowlevel.build("lenet5", (32, 32, 1), 10, init="seed0").get_weights()
    np.testing.assert_allclose(as_written[1], 0.1)
    assert as_written[5].std() > 0.01
    # the same seed gives the same weights, another seed others
    again = lowlevel.build("lenet5", (32, 32, 1), 10, init="truncated_normal").get_weights()
    other = lowlevel.build("lenet5", (32, 32, 1), 10, init="truncated_normal", seed=1).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(seed0, again))
    assert not np.array_equal(seed0[0], other[0])


def test_dropout_is_seeded_inverted_and_off_at_inference():
    x = np.ones((4, 1024), "float32")
    a = keras.ops.convert_to_numpy(layers.dropout(x, 0.5, seed=3))
    b = keras.ops.convert_to_numpy(layers.dropout(x, 0.5, seed=3))
    c = keras.ops.convert_to_numpy(layers.dropout(x, 0.5, seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) == {0.0, 2.0}  # kept units scaled by 1 / (1 - rate)
    assert 0.4 < (a == 0).mean() < 0.6

    net = lowlevel.build("mnist_cnn", (28, 28, 1), 10)
    images = np.random.default_rng(0).random((8, 28, 28, 1), dtype="float32")
    infer = [keras.ops.convert_to_numpy(net.forward(images)) for _ in range(2)]
    train = [keras.ops.convert_to_numpy(net.forward(images, training=True, seed=s)) for s in (1, 1, 2)]
    np.testing.assert_array_equal(infer[0], infer[1])
    np.testing.assert_array_equal(train[0], train[1])
    assert not np.allclose(train[0], infer[0]) and not np.allclose(train[0], train[2])


def test_set_weights_round_trip_and_mismatch():
    net = lowlevel.build("lenet5", (32, 32, 1), 10)
    other = lowlevel.build("lenet5", (32, 32, 1), 10, seed=7)
    other.set_weights(net.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), other.get_weights()))
    with pytest.raises(ModelError, match="got 2 arrays; expected 10"):
        net.set_weights(net.get_weights()[:2])
    wrong = net.get_weights()
    wrong[4] = np.zeros((401, 120), "float32")
    with pytest.raises(ModelError, match=r"fc_3/weights.*\(401, 120\).*\(400, 120\)"):
        net.set_weights(wrong)


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("resnet", (32, 32, 3)), {}, "no low-level twin for 'resnet'"),
        (("lenet5", (32, 32, 1)), {"dropout": 0.5}, "unknown option"),
        (("lenet5", (8, 8, 1)), {}, "too small"),
        (("lenet5", (32, 32)), {}, "input_shape must be"),
        (("softmax", (28, 28, 1), 1), {}, "num_classes must be at least 2"),
        (("lenet5", (32, 32, 1)), {"init": "he"}, "unknown initialisation 'he'"),
    ],
)
def test_bad_arguments_are_clear_errors(args, options, message):
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError, match=message) as info:
        lowlevel.build(*args, **options)
    assert "\n" not in str(info.value)
