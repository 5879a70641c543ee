"""A small residual network that trains to a useful CIFAR-10 accuracy in minutes on a CPU.

The layout is David Page's ResNet-9 (Myrtle.ai 2018, "How to train your ResNet", the
DAWNBench CIFAR-10 winner; also the base of Keller Jordan's airbench, 2024): a prep conv, three
stages that each convolve then max-pool, residual pairs after stages 1 and 3, global max
pooling and a scaled linear classifier. cnnlab's default is half of Page's widths (32, 64, 128,
256 instead of 64 ... 512): four times fewer FLOPs, for CPUs. The performance work tunes it.
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.models.blocks import conv_bn_relu, model_input
from cnnlab.models.registration import register_model

layers = keras.layers

PAGE_2018 = "Page 2018, How to Train Your ResNet (Myrtle.ai; ResNet-9, DAWNBench CIFAR-10)"


def _stage(x, filters: int, name: str, *, residual: bool):
    """conv-BN-ReLU, max-pool 2, then (optionally) x + two conv-BN-ReLU."""
    x = conv_bn_relu(x, filters, 3, f"{name}_conv")
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    if residual:
        y = conv_bn_relu(x, filters, 3, f"{name}_res1")
        y = conv_bn_relu(y, filters, 3, f"{name}_res2")
        x = layers.Add(name=f"{name}_add")([x, y])
    return x


@register_model(
    "fastnet",
    description="ResNet-9 at half width: quick CIFAR-10 training on a CPU",
    paper=PAGE_2018,
    input_shape=(32, 32, 3),
    min_size=8,
    quick_options={"width": 8},
    quick_size=16,
)
def fastnet(input_shape=(32, 32, 3), num_classes=10, *, width=32, logit_scale=0.125):
    """ResNet-9 (Page 2018) with ``width`` prep filters (Page: 64): prep conv, stages of 2, 4, 8 x
    ``width`` filters each followed by 2x2 max-pooling, residual pairs after the first and last
    stages, global max pooling, dense, logits multiplied by ``logit_scale`` (Page's 0.125, which
    keeps the early softmax soft).
    """
    inputs = model_input(input_shape)
    x = conv_bn_relu(inputs, width, 3, "prep")
    x = _stage(x, 2 * width, "stage1", residual=True)
    x = _stage(x, 4 * width, "stage2", residual=False)
    x = _stage(x, 8 * width, "stage3", residual=True)
    x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = layers.Dense(num_classes, name="fc")(x)
    outputs = layers.Rescaling(logit_scale, name="logits")(x)
    return keras.Model(inputs, outputs, name="fastnet")
