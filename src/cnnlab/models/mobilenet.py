"""MobileNetV2, CIFAR form.

Sandler, Howard, Zhu, Zhmoginov, Chen (2018), MobileNetV2: Inverted Residuals and Linear
Bottlenecks, CVPR. The CIFAR form (as in kuangliu/pytorch-cifar) keeps table 2's stages but
uses a stride-1 first convolution and stride 1 in the first two stride-2 places (the 24-filter
stage), so a 32x32 image ends at 4x4; where a stride-1 block changes the channel count, a 1x1
convolution + BN projects the shortcut (the paper has no shortcut there).
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models.blocks import batch_norm, classifier, conv_bn_relu, model_input
from cnnlab.models.registration import register_model

layers = keras.layers

SANDLER_2018 = "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR)"

# (expansion t, output channels c, repeats n, first stride s): table 2, CIFAR strides.
CIFAR_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def inverted_residual(x, expansion: int, filters: int, stride: int, name: str):
    """Expand 1x1 (ReLU) -> depthwise 3x3 (ReLU) -> linear 1x1 projection, plus the shortcut at stride 1."""
    in_channels = x.shape[-1]
    y = conv_bn_relu(x, expansion * in_channels, 1, f"{name}_expand")
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_depthwise")(y)
    y = batch_norm(y, f"{name}_depthwise_bn")
    y = layers.Activation("relu", name=f"{name}_depthwise_relu")(y)
    y = conv_bn_relu(y, filters, 1, f"{name}_project", activation=None)
    if stride != 1:
        return y
    skip = x if in_channels == filters else conv_bn_relu(x, filters, 1, f"{name}_shortcut", activation=None)
    return layers.Add(name=f"{name}_add")([skip, y])


def mobilenet_v2_cifar(input_shape=(32, 32, 3), num_classes=10, *, width=1.0, repeats=None):
    """MobileNetV2 (Sandler et al. 2018) in the CIFAR form: conv 3x3 32 at stride 1, the seven
    inverted-residual stages of table 2 with strides 1, 1, 2, 2, 1, 2, 1, conv 1x1 1280, global
    average pooling, dense. ReLU as in the CIFAR reference implementation (the paper uses
    ReLU6). ``width`` scales every layer's channels; ``repeats`` replaces table 2's block
    counts per stage (1, 2, 3, 4, 3, 3, 1).
    """
    stages = CIFAR_STAGES
    if repeats is not None:
        if len(repeats) != len(CIFAR_STAGES) or min(repeats) < 1:
            raise ModelError(f"mobilenet_v2: option repeats must give 7 positive counts, got {repeats!r}")
        stages = tuple((t, c, int(n), s) for (t, c, _, s), n in zip(CIFAR_STAGES, repeats))

    def scaled(channels):
        return max(1, int(round(channels * width)))

    inputs = model_input(input_shape)
    x = conv_bn_relu(inputs, scaled(32), 3, "stem")
    for stage, (expansion, filters, repeats, stride) in enumerate(stages, start=1):
        for block in range(1, repeats + 1):
            x = inverted_residual(
                x, expansion, scaled(filters), stride if block == 1 else 1, f"stage{stage}_block{block}"
            )
    x = conv_bn_relu(x, scaled(1280), 1, "head")
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


register_model(
    "mobilenet_v2",
    description="MobileNetV2, CIFAR form: inverted residuals, stride 1 in the first two stages",
    paper=SANDLER_2018,
    input_shape=(32, 32, 3),
    min_size=8,
    reference_params=2296922,
    reference_note="trainable parameters of the common CIFAR form (kuangliu/pytorch-cifar MobileNetV2)",
    quick_options={"width": 0.25, "repeats": (1,) * 7},
    quick_size=16,
)(mobilenet_v2_cifar)
