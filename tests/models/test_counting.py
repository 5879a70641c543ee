"""FLOP and parameter counting against hand counts."""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.models import count_flops, count_params, create_model

layers = keras.layers


def _conv_flops(out_h, out_w, out_c, kernel_h, kernel_w, in_c, *, bias=True, relu=True):
    outputs = out_h * out_w * out_c
    return 2 * outputs * kernel_h * kernel_w * in_c + (outputs if bias else 0) + (outputs if relu else 0)


def test_lenet5_flops_equal_the_hand_count():
    expected = (
        _conv_flops(28, 28, 6, 5, 5, 1)  # conv1 + bias + ReLU
        + 14 * 14 * 6 * 4  # pool1: 2x2 window per output
        + _conv_flops(10, 10, 16, 5, 5, 6)  # conv2
        + 5 * 5 * 16 * 4  # pool2
        + (2 * 400 * 120 + 120 + 120)  # fc1 + bias + ReLU
        + (2 * 120 * 84 + 84 + 84)  # fc2
        + (2 * 84 * 10 + 10)  # logits + bias, no activation
    )
    assert count_flops(create_model("lenet5")) == expected


def test_flop_rules_for_bn_depthwise_separable_pool_and_add():
    inputs = keras.Input((8, 8, 4))
    a = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(inputs)  # 8x8x4
    a = layers.BatchNormalization(name="bn")(a)
    b = layers.SeparableConv2D(4, 3, padding="same", name="sep")(inputs)  # 8x8x4, bias
    x = layers.Add(name="add")([a, b, inputs])
    x = layers.Activation("relu", name="relu")(x)
    x = layers.AveragePooling2D(2, name="pool")(x)  # 4x4x4
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.5, name="drop")(x)
    outputs = layers.Dense(3, use_bias=False, name="fc")(x)
    model = keras.Model(inputs, outputs)
    positions = 8 * 8
    expected = (
        2 * positions * 9 * 4  # depthwise 3x3 per channel
        + 2 * positions * 4  # batch norm
        + 2 * positions * (9 * 4 + 4 * 4)
        + positions * 4  # separable: depthwise + pointwise, bias
        + 2 * positions * 4  # three-way add: two additions per element
        + positions * 4  # ReLU
        + 4 * 4 * 4 * 4  # 2x2 average pool
        + 4 * 4 * 4  # global average pool reads every input
        + 2 * 4 * 3  # dense without bias
    )
    assert count_flops(model) == expected


def test_param_counts_split_trainable_and_batch_norm_statistics():
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(5, 3, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, x)
    counts = count_params(model)
    assert counts.trainable == 3 * 3 * 2 * 5 + 5 + 2 * 5
    assert counts.non_trainable == 2 * 5
    assert counts.total == model.count_params()


def test_sequential_models_are_counted_too():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(2)])
    assert count_flops(model) == (2 * 4 * 3 + 3 + 3) + (2 * 3 * 2 + 2)
