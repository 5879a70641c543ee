"""VGG with batch normalisation, CIFAR form.

Simonyan, Zisserman (2015), Very Deep Convolutional Networks for Large-Scale Image Recognition,
ICLR (configurations A = VGG-11 and D = VGG-16), with batch normalisation after every
convolution (Ioffe & Szegedy 2015). The CIFAR form keeps the 13 (or 8) convolutions and five
max-pools, and replaces the three 4096-unit dense layers by a single 512-to-classes layer.
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.models.blocks import classifier, conv_bn_relu, model_input
from cnnlab.models.registration import register_model

layers = keras.layers

SIMONYAN_2015 = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition (ICLR)"

# Filters per convolution in each of the five stages; every stage ends in a 2x2 max-pool.
VGG_STAGES = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def vgg_bn_cifar(input_shape=(32, 32, 3), num_classes=10, *, depth=16, width=1.0):
    """VGG-``depth`` with batch norm, CIFAR form: [conv3x3 (with bias) - BN - ReLU] x n, max-pool,
    per stage; global average pooling of the final 1x1x512 map (at 32x32 the same as flattening),
    one dense layer 512 -> classes. ``width`` scales every stage's filters.
    """
    inputs = model_input(input_shape)
    x = inputs
    for stage, filters in enumerate(VGG_STAGES[depth], start=1):
        for i, f in enumerate(filters, start=1):
            x = conv_bn_relu(x, max(1, int(f * width)), 3, f"stage{stage}_{i}", use_bias=True)
        x = layers.MaxPooling2D(2, strides=2, name=f"stage{stage}_pool")(x)
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=f"vgg{depth}_bn")


for _depth, _params in ((11, 9231114), (16, 14728266)):
    register_model(
        f"vgg{_depth}_bn",
        description=f"VGG-{_depth} with batch norm, CIFAR form: {sum(map(len, VGG_STAGES[_depth]))} conv layers, "
        "one 512-to-classes dense classifier",
        paper=SIMONYAN_2015,
        input_shape=(32, 32, 3),
        min_size=32,
        reference_params=_params,
        reference_note="CIFAR form with a single 512-to-classes classifier (kuangliu/pytorch-cifar's VGG), "
        "trainable parameters",
        quick_options={"width": 0.125},
        quick_size=32,
        depth=_depth,
    )(vgg_bn_cifar)
