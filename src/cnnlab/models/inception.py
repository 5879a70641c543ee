"""Inception-v4, as published (299x299) and in a CIFAR-scale form (32x32).

Szegedy, Ioffe, Vanhoucke, Alemi (2017), Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning, AAAI. Figures 3-9 give the stem, the Inception-A/B/C blocks
and the two reduction blocks; branch order and the 1x7/7x1 order follow the authors' TF-slim
code (``inception_v4.py``). Every convolution is conv (no bias) -> BN -> ReLU.
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models.blocks import conv_bn_relu, model_input
from cnnlab.models.registration import register_model

layers = keras.layers

SZEGEDY_2017 = (
    "Szegedy et al. 2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning (AAAI)"
)


class _Inception:
    """Holds the width multiplier so the block functions read like the paper's figures."""

    def __init__(self, width: float, bn_scale: bool):
        self.width = width
        self.bn_scale = bn_scale

    def conv(self, x, filters, kernel, name, strides=1, padding="same"):
        filters = max(1, int(round(filters * self.width)))
        return conv_bn_relu(x, filters, kernel, name, strides=strides, padding=padding, bn_scale=self.bn_scale)

    def stem(self, x):
        """Figure 3: 299x299x3 -> 35x35x384."""
        x = self.conv(x, 32, 3, "stem_1", strides=2, padding="valid")
        x = self.conv(x, 32, 3, "stem_2", padding="valid")
        x = self.conv(x, 64, 3, "stem_3")
        pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_4_pool")(x)
        x = layers.Concatenate(name="stem_4")([pool, self.conv(x, 96, 3, "stem_4_conv", strides=2, padding="valid")])
        a = self.conv(x, 64, 1, "stem_5a_1")
        a = self.conv(a, 96, 3, "stem_5a_2", padding="valid")
        b = self.conv(x, 64, 1, "stem_5b_1")
        b = self.conv(b, 64, (1, 7), "stem_5b_2")
        b = self.conv(b, 64, (7, 1), "stem_5b_3")
        b = self.conv(b, 96, 3, "stem_5b_4", padding="valid")
        x = layers.Concatenate(name="stem_5")([a, b])
        conv = self.conv(x, 192, 3, "stem_6_conv", strides=2, padding="valid")
        pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_6_pool")(x)
        return layers.Concatenate(name="stem_6")([conv, pool])

    def cifar_stem(self, x):
        """Three 3x3 convolutions at full resolution: 32x32x3 -> 32x32x384 (width 1)."""
        x = self.conv(x, 64, 3, "stem_1")
        x = self.conv(x, 96, 3, "stem_2")
        return self.conv(x, 384, 3, "stem_3")

    def _pool_branch(self, x, filters, name):
        pool = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
        return self.conv(pool, filters, 1, f"{name}_conv")

    def block_a(self, x, name):
        """Figure 4: the 35x35 grid module; 384 channels out."""
        b0 = self.conv(x, 96, 1, f"{name}_b0")
        b1 = self.conv(self.conv(x, 64, 1, f"{name}_b1_1"), 96, 3, f"{name}_b1_2")
        b2 = self.conv(x, 64, 1, f"{name}_b2_1")
        b2 = self.conv(self.conv(b2, 96, 3, f"{name}_b2_2"), 96, 3, f"{name}_b2_3")
        b3 = self._pool_branch(x, 96, f"{name}_b3")
        return layers.Concatenate(name=name)([b0, b1, b2, b3])

    def reduction_a(self, x, name="reduction_a", k=192, l=224, m=256, n=384):  # noqa: E741 (the paper's k, l, m, n)
        """Figure 7 with Inception-v4's k, l, m, n = 192, 224, 256, 384: 35x35 -> 17x17."""
        b0 = self.conv(x, n, 3, f"{name}_b0", strides=2, padding="valid")
        b1 = self.conv(self.conv(x, k, 1, f"{name}_b1_1"), l, 3, f"{name}_b1_2")
        b1 = self.conv(b1, m, 3, f"{name}_b1_3", strides=2, padding="valid")
        b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_b2_pool")(x)
        return layers.Concatenate(name=name)([b0, b1, b2])

    def block_b(self, x, name):
        """Figure 5: the 17x17 grid module; 1024 channels out."""
        b0 = self.conv(x, 384, 1, f"{name}_b0")
        b1 = self.conv(x, 192, 1, f"{name}_b1_1")
        b1 = self.conv(b1, 224, (1, 7), f"{name}_b1_2")
        b1 = self.conv(b1, 256, (7, 1), f"{name}_b1_3")
        b2 = self.conv(x, 192, 1, f"{name}_b2_1")
        b2 = self.conv(b2, 192, (7, 1), f"{name}_b2_2")
        b2 = self.conv(b2, 224, (1, 7), f"{name}_b2_3")
        b2 = self.conv(b2, 224, (7, 1), f"{name}_b2_4")
        b2 = self.conv(b2, 256, (1, 7), f"{name}_b2_5")
        b3 = self._pool_branch(x, 128, f"{name}_b3")
        return layers.Concatenate(name=name)([b0, b1, b2, b3])

    def reduction_b(self, x, name="reduction_b"):
        """Figure 8: 17x17 -> 8x8."""
        b0 = self.conv(self.conv(x, 192, 1, f"{name}_b0_1"), 192, 3, f"{name}_b0_2", strides=2, padding="valid")
        b1 = self.conv(x, 256, 1, f"{name}_b1_1")
        b1 = self.conv(b1, 256, (1, 7), f"{name}_b1_2")
        b1 = self.conv(b1, 320, (7, 1), f"{name}_b1_3")
        b1 = self.conv(b1, 320, 3, f"{name}_b1_4", strides=2, padding="valid")
        b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_b2_pool")(x)
        return layers.Concatenate(name=name)([b0, b1, b2])

    def block_c(self, x, name):
        """Figure 6: the 8x8 grid module; 1536 channels out."""
        b0 = self.conv(x, 256, 1, f"{name}_b0")
        b1 = self.conv(x, 384, 1, f"{name}_b1")
        b1 = layers.Concatenate(name=f"{name}_b1_cat")(
            [self.conv(b1, 256, (1, 3), f"{name}_b1_1x3"), self.conv(b1, 256, (3, 1), f"{name}_b1_3x1")]
        )
        b2 = self.conv(x, 384, 1, f"{name}_b2_1")
        b2 = self.conv(b2, 448, (3, 1), f"{name}_b2_2")
        b2 = self.conv(b2, 512, (1, 3), f"{name}_b2_3")
        b2 = layers.Concatenate(name=f"{name}_b2_cat")(
            [self.conv(b2, 256, (1, 3), f"{name}_b2_1x3"), self.conv(b2, 256, (3, 1), f"{name}_b2_3x1")]
        )
        b3 = self._pool_branch(x, 256, f"{name}_b3")
        return layers.Concatenate(name=name)([b0, b1, b2, b3])


def inception_v4(
    input_shape=(299, 299, 3),
    num_classes=1000,
    *,
    stem="imagenet",
    width=1.0,
    blocks=(4, 7, 3),
    dropout=0.2,
    bn_scale=True,
):
    """Inception-v4 (Szegedy et al. 2017, figure 9): stem, 4 x Inception-A, Reduction-A,
    7 x Inception-B, Reduction-B, 3 x Inception-C, global average pooling, dropout (keep 0.8),
    dense.

    ``stem="cifar"`` replaces the 299x299 stem (which divides the resolution by 8) with three
    3x3 convolutions at full resolution, so a 32x32 image reaches Inception-A at 32x32, the
    analogue of the published 35x35 grid. ``width`` scales every convolution's filters and
    ``blocks`` sets the number of A, B and C modules. Batch norms learn a scale and a shift, as in
    the PyTorch ports whose 42,679,816 parameters are the reference count; ``bn_scale=False`` is
    the authors' TF-slim batch norm (a shift only, since a ReLU follows): 31,584 fewer.
    """
    if stem not in ("imagenet", "cifar"):
        raise ModelError(f"inception_v4: option stem must be 'imagenet' or 'cifar', got {stem!r}")
    if len(blocks) != 3:
        raise ModelError(f"inception_v4: option blocks must give three counts (A, B, C), got {blocks!r}")
    net = _Inception(width, bn_scale)
    inputs = model_input(input_shape)
    x = net.stem(inputs) if stem == "imagenet" else net.cifar_stem(inputs)
    for i in range(1, blocks[0] + 1):
        x = net.block_a(x, f"inception_a{i}")
    x = net.reduction_a(x)
    for i in range(1, blocks[1] + 1):
        x = net.block_b(x, f"inception_b{i}")
    x = net.reduction_b(x)
    for i in range(1, blocks[2] + 1):
        x = net.block_c(x, f"inception_c{i}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="inception_v4")


register_model(
    "inception_v4",
    description="Inception-v4 as published: 299x299 stem, 4 A + 7 B + 3 C modules, two reductions",
    paper=SZEGEDY_2017,
    input_shape=(299, 299, 3),
    min_size=75,
    reference_params=42679816,
    reference_input_shape=(299, 299, 3),
    reference_num_classes=1000,
    quick_options={"width": 0.125, "blocks": (1, 1, 1)},
    quick_size=75,
)(inception_v4)

register_model(
    "inception_v4_cifar",
    description="Inception-v4 at CIFAR scale: 3x3 full-resolution stem, the published modules at quarter width",
    paper=SZEGEDY_2017 + "; CIFAR stem and width 0.25 are cnnlab's",
    input_shape=(32, 32, 3),
    min_size=7,
    quick_options={"width": 0.125, "blocks": (1, 1, 1)},
    quick_size=16,
    stem="cifar",
    width=0.25,
)(inception_v4)
