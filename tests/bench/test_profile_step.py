"""The step profile's op categories, on op names TensorFlow gave mnist_cnn's and airbench's train steps."""

from __future__ import annotations

import pytest

from benchmarks.profile_step import CATEGORIES, op_category

BODY = "while/body/_1/while"
TAPE = "while/body/_1/gradient_tape/while"


@pytest.mark.parametrize(
    ("node", "op_type", "category"),
    [
        (f"{BODY}/mnist_cnn_1/conv2_1/Relu", "_FusedConv2D", "convolution forward"),
        (f"{BODY}/airbench_1/group1_conv1_1/convolution", "Conv2D", "convolution forward"),
        (
            f"{TAPE}/mnist_cnn_1/conv2_1/convolution/Conv2DBackpropFilter",
            "Conv2DBackpropFilter",
            "convolution backward",
        ),
        (f"{TAPE}/mnist_cnn_3/conv2_1/convolution/Conv2DBackpropInput", "Conv2DBackpropInput", "convolution backward"),
        (f"{BODY}/airbench_1/group1_1_bn_1/FusedBatchNormV3", "FusedBatchNormV3", "batch norm (fwd+bwd)"),
        (f"{TAPE}/airbench_1/group1_1_bn_1/FusedBatchNormGradV3", "FusedBatchNormGradV3", "batch norm (fwd+bwd)"),
        (f"{TAPE}/mnist_cnn_3/fc1_1/MatMul/MatMul", "MatMul", "matmul / dense"),
        (f"{BODY}/mnist_cnn_1/fc1_1/Relu", "_FusedMatMul", "matmul / dense"),
        (f"{TAPE}/mnist_cnn_1/conv1_1/ReluGrad", "ReluGrad", "elementwise / activations"),
        (f"{BODY}/airbench_1/whiten_gelu_1/Gelu/Erfc", "Erfc", "elementwise / activations"),
        (
            f"{BODY}/mnist_cnn_3/dropout1_1/stateless_dropout/stateless_random_uniform/StatelessRandomUniformV2",
            "StatelessRandomUniformV2",
            "elementwise / activations",
        ),
        (f"{TAPE}/mnist_cnn_3/pool1_1/MaxPool2d/MaxPoolGrad", "MaxPoolGrad", "pooling"),
        (f"{BODY}/airbench_1/max_pool_1/Max", "Max", "pooling"),  # a global max pooling is a reduction
        (f"{BODY}/adam/ResourceApplyAdam_4", "ResourceApplyAdam", "optimizer update"),
        (f"{BODY}/sgd/mul_47", "Mul", "optimizer update"),  # the same type elsewhere is elementwise
        (
            f"{BODY}/compile_loss/sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits/"
            "SparseSoftmaxCrossEntropyWithLogits",
            "SparseSoftmaxCrossEntropyWithLogits",
            "loss / softmax",
        ),
        (f"{BODY}/Cast_3", "Cast", "input (host prep + casts)"),
        (f"{BODY}/mnist_cnn_1/flatten_1/strided_slice", "StridedSlice", "other"),
        (f"{BODY}/ArgMax", "ArgMax", "other"),  # the accuracy metric
    ],
)
def test_real_op_names_fall_in_their_category(node, op_type, category):
    assert category in CATEGORIES
    assert op_category(node, op_type) == category


def test_a_layer_named_like_a_category_does_not_capture_an_unrelated_scope():
    # "pool" only counts as a scope above the op, and Keras's "_1" copy suffixes are dropped
    assert op_category(f"{BODY}/pooled_features", "AddV2") == "elementwise / activations"
    assert op_category(f"{BODY}/sgd_1/Sub", "Sub") == "optimizer update"
    # a batch norm built from ops (no fused kernel) is found by its layer's scope
    assert op_category(f"{TAPE}/resnet_1/group1_bn_1/moments/mean", "Mean") == "batch norm (fwd+bwd)"
    assert op_category(f"{BODY}/model_1/batch_normalization_1/batchnorm/mul", "Mul") == "batch norm (fwd+bwd)"
