"""The tutorials' networks: exact parameter counts, weight order and the seeds' options."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import ModelError
from cnnlab.models import count_params, create_model

# (kh, kw, in, out) conv kernels and (in, out) dense kernels, in get_weights() order:
# the contract in docs/architecture.md that the scratch and low-level twins rely on.
WEIGHT_SHAPES = {
    "softmax": [(784, 10), (10,)],
    "lenet5": [(5, 5, 1, 6), (6,), (5, 5, 6, 16), (16,), (400, 120), (120,), (120, 84), (84,), (84, 10), (10,)],
    "mnist_cnn": [(5, 5, 1, 32), (32,), (5, 5, 32, 64), (64,), (1024, 1024), (1024,), (1024, 10), (10,)],
    "cifar_cnn": [(3, 3, 3, 32), (3, 3, 32, 64), (3, 3, 64, 128), (2048, 625), (625, 10)],
}


@pytest.mark.parametrize(
    "name, total, trainable",
    [
        ("softmax", 7850, 7850),
        ("lenet5", 61706, 61706),
        ("mnist_cnn", 1111946, 1111946),
        ("cifar_cnn", 1379274, 1379274),
        ("vgg_bn", 552362, 551466),
    ],
)
def test_exact_parameter_counts(name, total, trainable):
    counts = count_params(create_model(name, num_classes=10))
    assert (counts.total, counts.trainable) == (total, trainable)


@pytest.mark.parametrize("name", sorted(WEIGHT_SHAPES))
def test_weighted_layers_in_the_documented_order(name):
    model = create_model(name)
    assert [tuple(w.shape) for w in model.get_weights()] == WEIGHT_SHAPES[name]
    assert model.name == name and model.layers[-1].name == "logits"
    assert model.layers[-1].activation.__name__ == "linear"  # logits, no softmax


def test_mnist_cnn_narrows_by_its_options():
    # fast-mnist's network: the same layers at a quarter of the widths
    model = create_model("mnist_cnn", filters=[16, 32], units=256)
    assert [tuple(w.shape) for w in model.get_weights()] == [
        (5, 5, 1, 16), (16,), (5, 5, 16, 32), (32,), (512, 256), (256,), (256, 10), (10,)
    ]  # fmt: skip
    with pytest.raises(ModelError, match="mnist_cnn: filters takes two positive widths"):
        create_model("mnist_cnn", filters=[16])


def test_vgg_bn_dense_batchnorm_is_the_seed_code_version():
    counts = count_params(create_model("vgg_bn", dense_batchnorm=True))
    # one more BatchNormalization(128): 256 trainable (gamma, beta) + 256 moving statistics
    assert (counts.total, counts.trainable) == (552362 + 512, 551466 + 256)


def test_seed_initialisers():
    zeros = create_model("softmax", kernel_initializer="zeros")
    assert not np.any(zeros.get_weights()[0])
    seed0 = create_model("lenet5", init="seed0")
    conv1_kernel, conv1_bias = seed0.get_layer("conv1").get_weights()
    assert np.all(conv1_bias == np.float32(0.1))
    assert np.abs(seed0.get_layer("fc1").get_weights()[0]).max() <= 0.2 + 1e-6  # truncated at 2 stddev
    cifar = create_model("cifar_cnn")
    kernel = cifar.get_layer("fc1").get_weights()[0]
    assert abs(kernel.std() - 0.01) < 0.001 and not cifar.get_layer("fc1").use_bias


def test_max_norm_and_dropout_options():
    model = create_model("vgg_bn", max_norm=3.0, dropout=(0.1, 0.2, 0.3), dense_dropout=0.4)
    assert model.get_layer("block1_conv1").kernel_constraint is not None
    assert [model.get_layer(f"block{i}_dropout").rate for i in (1, 2, 3)] == [0.1, 0.2, 0.3]
    assert model.get_layer("dropout_fc1").rate == 0.4
    assert create_model("cifar_cnn", conv_dropout=0.3).get_layer("dropout1").rate == 0.3
