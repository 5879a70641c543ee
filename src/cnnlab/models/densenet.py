"""Densely connected networks: DenseNet-BC-100 (k=12) for CIFAR and DenseNet-121 for ImageNet.

Huang, Liu, van der Maaten, Weinberger (2017), Densely Connected Convolutional Networks, CVPR.
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models.blocks import bn_relu, classifier, conv, conv_bn_relu, model_input
from cnnlab.models.registration import register_model

layers = keras.layers

HUANG_2017 = "Huang et al. 2017, Densely Connected Convolutional Networks (CVPR)"


def dense_layer(x, growth_rate: int, name: str, *, bottleneck: bool = True):
    """BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) (the "B" of DenseNet-BC), concatenated to the input."""
    y = x
    if bottleneck:
        y = bn_relu(y, f"{name}_1")
        y = conv(y, 4 * growth_rate, 1, f"{name}_1_conv")
    y = bn_relu(y, f"{name}_2")
    y = conv(y, growth_rate, 3, f"{name}_2_conv")
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def dense_block(x, num_layers: int, growth_rate: int, name: str, *, bottleneck: bool = True):
    for i in range(1, num_layers + 1):
        x = dense_layer(x, growth_rate, f"{name}_layer{i}", bottleneck=bottleneck)
    return x


def transition(x, compression: float, name: str):
    """BN-ReLU-conv1x1 keeping ``compression`` of the channels (the "C"), then 2x2 average pooling."""
    x = bn_relu(x, name)
    x = conv(x, int(x.shape[-1] * compression), 1, f"{name}_conv")
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def densenet(
    input_shape=(32, 32, 3),
    num_classes=10,
    *,
    blocks=(16, 16, 16),
    growth_rate=12,
    compression=0.5,
    bottleneck=True,
    stem="cifar",
):
    """DenseNet(-BC) of Huang et al. (2017) with ``blocks`` layers per dense block.

    ``stem="cifar"``: conv 3x3 with 2k filters (the paper's CIFAR form); ``stem="imagenet"``: conv
    7x7/2 with 2k filters, BN-ReLU, max-pool 3x3/2. Dense blocks are joined by transitions;
    a final BN-ReLU, global average pooling and a dense layer give the logits.
    """
    if stem not in ("cifar", "imagenet"):
        raise ModelError(f"densenet: option stem must be 'cifar' or 'imagenet', got {stem!r}")
    if not 0 < compression <= 1:
        raise ModelError(f"densenet: option compression must be in (0, 1], got {compression!r}")
    inputs = model_input(input_shape)
    if stem == "cifar":
        x = conv(inputs, 2 * growth_rate, 3, "stem_conv")
    else:
        x = layers.ZeroPadding2D(3, name="stem_pad")(inputs)
        x = conv_bn_relu(x, 2 * growth_rate, 7, "stem", strides=2, padding="valid")
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for i, num_layers in enumerate(blocks, start=1):
        x = dense_block(x, num_layers, growth_rate, f"block{i}", bottleneck=bottleneck)
        if i < len(blocks):
            x = transition(x, compression, f"transition{i}")
    x = bn_relu(x, "final")
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="densenet")


register_model(
    "densenet_bc_100_k12",
    description="DenseNet-BC-100, growth rate 12: 3 dense blocks of 16 bottleneck layers, compression 0.5",
    paper=HUANG_2017,
    input_shape=(32, 32, 3),
    min_size=4,
    reference_params=769162,
    quick_options={"blocks": (2, 2, 2)},
    quick_size=16,
    blocks=(16, 16, 16),
    growth_rate=12,
    stem="cifar",
)(densenet)

register_model(
    "densenet121",
    description="DenseNet-121 (ImageNet form): 7x7/2 stem, dense blocks of 6/12/24/16 layers, k=32",
    paper=HUANG_2017,
    input_shape=(224, 224, 3),
    min_size=32,
    reference_params=7978856,
    reference_input_shape=(224, 224, 3),
    reference_num_classes=1000,
    reference_note="trainable parameters at 224x224x3, 1000 classes (keras.applications.DenseNet121: the same)",
    quick_options={"blocks": (1, 1, 1, 1), "growth_rate": 8},
    quick_size=32,
    blocks=(6, 12, 24, 16),
    growth_rate=32,
    stem="imagenet",
)(densenet)
