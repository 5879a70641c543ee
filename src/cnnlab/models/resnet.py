"""Residual networks for CIFAR: ResNet-20 ... 110, pre-activation ResNet-18, Wide ResNets.

- He, Zhang, Ren, Sun (2016), Deep Residual Learning for Image Recognition, CVPR, section 4.2:
  the CIFAR ResNets (6n+2 layers, 16/32/64 filters, option-A parameter-free shortcuts).
- He, Zhang, Ren, Sun (2016), Identity Mappings in Deep Residual Networks, ECCV: pre-activation.
- Zagoruyko, Komodakis (2016), Wide Residual Networks, BMVC: WRN-d-k.
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models.blocks import ZeroPadShortcut, bn_relu, classifier, conv, conv_bn_relu, model_input
from cnnlab.models.registration import register_model

layers = keras.layers

HE_2016 = "He et al. 2016, Deep Residual Learning for Image Recognition (CVPR), sec. 4.2"
HE_2016_IDENTITY = "He et al. 2016, Identity Mappings in Deep Residual Networks (ECCV)"
WRN_2016 = "Zagoruyko & Komodakis 2016, Wide Residual Networks (BMVC)"


def basic_block(x, filters: int, stride: int, name: str, *, shortcut: str = "A"):
    """Post-activation basic block: conv3x3-BN-ReLU-conv3x3-BN, add the shortcut, ReLU."""
    in_channels = x.shape[-1]
    y = conv_bn_relu(x, filters, 3, f"{name}_1", strides=stride)
    y = conv_bn_relu(y, filters, 3, f"{name}_2", activation=None)
    if stride == 1 and in_channels == filters:
        skip = x
    elif shortcut == "A":
        skip = ZeroPadShortcut(filters, stride, name=f"{name}_shortcut")(x)
    else:  # option B: 1x1 projection
        skip = conv_bn_relu(x, filters, 1, f"{name}_shortcut", strides=stride, activation=None)
    y = layers.Add(name=f"{name}_add")([skip, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def resnet_cifar(input_shape=(32, 32, 3), num_classes=10, *, depth=20, width=16, shortcut="A"):
    """The CIFAR ResNet of He et al. (2016), sec. 4.2: 6n+2 layers.

    conv 3x3 16, then three stages of n basic blocks with 16, 32, 64 filters (``width`` x 1, 2,
    4), the first block of stages 2 and 3 striding by 2; global average pooling; dense. Shortcuts
    are identities, and option A (subsample + zero-pad channels, no parameters) where the shape
    changes; ``shortcut="B"`` uses 1x1 convolution projections instead.
    """
    if (depth - 2) % 6 or depth < 8:
        raise ModelError(f"resnet: depth must be 6n+2 (20, 32, 44, 56, 110 ...), got {depth!r}")
    if shortcut not in ("A", "B"):
        raise ModelError(f"resnet: option shortcut must be 'A' or 'B', got {shortcut!r}")
    blocks_per_stage = (depth - 2) // 6
    inputs = model_input(input_shape)
    x = conv_bn_relu(inputs, width, 3, "stem")
    for stage, multiplier in enumerate((1, 2, 4), start=1):
        for block in range(1, blocks_per_stage + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, width * multiplier, stride, f"stage{stage}_block{block}", shortcut=shortcut)
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


_RESNET_PARAMS = {20: 269722, 32: 464154, 44: 658586, 56: 853018, 110: 1727962}

for _depth, _params in _RESNET_PARAMS.items():
    register_model(
        f"resnet{_depth}",
        description=f"ResNet-{_depth} for CIFAR: 3 stages x {(_depth - 2) // 6} basic blocks (16/32/64), option-A shortcuts",
        paper=HE_2016,
        input_shape=(32, 32, 3),
        min_size=4,
        reference_params=_params,
        reference_note="trainable parameters, as in the paper's table 6 (0.27M ... 1.7M)",
        quick_options={"width": 8, "depth": 8},
        quick_size=16,
        depth=_depth,
    )(resnet_cifar)


def preact_block(x, filters: int, stride: int, name: str, *, dropout: float = 0.0):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the shortcut.

    When the shape changes the shortcut is a 1x1 convolution of the pre-activated input,
    as in He et al. (2016, Identity Mappings) and Zagoruyko & Komodakis (2016).
    """
    in_channels = x.shape[-1]
    pre = bn_relu(x, f"{name}_preact")
    if stride == 1 and in_channels == filters:
        skip = x
    else:
        skip = conv(pre, filters, 1, f"{name}_shortcut", strides=stride)
    y = conv(pre, filters, 3, f"{name}_conv1", strides=stride)
    y = bn_relu(y, f"{name}_mid")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv(y, filters, 3, f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([skip, y])


@register_model(
    "preact_resnet18",
    description="Pre-activation ResNet-18: 4 stages x 2 blocks (64-512), 3x3 stem for 32x32",
    paper=HE_2016_IDENTITY,
    input_shape=(32, 32, 3),
    min_size=8,
    reference_params=11171146,
    reference_note="the common CIFAR PreActResNet18 (kuangliu/pytorch-cifar) omits the final BN-ReLU; "
    "cnnlab keeps it, as in the paper: +1,024 trainable parameters",
    quick_options={"width": 8},
    quick_size=16,
)
def preact_resnet18(input_shape=(32, 32, 3), num_classes=10, *, width=64, final_activation=True):
    """Pre-activation ResNet-18 (He et al. 2016, Identity Mappings) in its CIFAR form.

    conv 3x3 ``width`` (no max-pool), four stages of two pre-activation blocks with 64, 128,
    256, 512 filters (strides 1, 2, 2, 2), a final BN-ReLU (the paper's; ``final_activation``),
    global average pooling, dense.
    """
    inputs = model_input(input_shape)
    x = conv(inputs, width, 3, "stem_conv")
    for stage, multiplier in enumerate((1, 2, 4, 8), start=1):
        for block in (1, 2):
            stride = 2 if stage > 1 and block == 1 else 1
            x = preact_block(x, width * multiplier, stride, f"stage{stage}_block{block}")
    if final_activation:
        x = bn_relu(x, "final")
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="preact_resnet18")


def wide_resnet(input_shape=(32, 32, 3), num_classes=10, *, depth=16, widen_factor=4, dropout=0.0):
    """WRN-depth-k (Zagoruyko & Komodakis 2016): the pre-activation CIFAR ResNet made k times wider.

    conv 3x3 16; three groups of n = (depth - 4) / 6 blocks with 16k, 32k, 64k filters
    (strides 1, 2, 2), each block BN-ReLU-conv3x3-[dropout]-BN-ReLU-conv3x3 with a 1x1
    convolution shortcut where the shape changes; final BN-ReLU, global average pooling, dense.
    """
    if (depth - 4) % 6 or depth < 10:
        raise ModelError(f"wide_resnet: depth must be 6n+4 (16, 22, 28, 40 ...), got {depth!r}")
    blocks_per_group = (depth - 4) // 6
    inputs = model_input(input_shape)
    x = conv(inputs, 16, 3, "stem_conv")
    for group, multiplier in enumerate((1, 2, 4), start=1):
        for block in range(1, blocks_per_group + 1):
            stride = 2 if group > 1 and block == 1 else 1
            x = preact_block(x, 16 * widen_factor * multiplier, stride, f"group{group}_block{block}", dropout=dropout)
    x = bn_relu(x, "final")
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=f"wide_resnet_{depth}_{widen_factor}")


for _depth, _k, _params in ((16, 4, 2748890), (28, 10, 36479194)):
    register_model(
        f"wide_resnet_{_depth}_{_k}",
        description=f"Wide ResNet WRN-{_depth}-{_k}: pre-activation, {(_depth - 4) // 6} blocks per group, "
        f"{16 * _k}/{32 * _k}/{64 * _k} filters",
        paper=WRN_2016,
        input_shape=(32, 32, 3),
        min_size=4,
        reference_params=_params,
        quick_options={"widen_factor": 1, "depth": 10},
        quick_size=16,
        depth=_depth,
        widen_factor=_k,
    )(wide_resnet)
