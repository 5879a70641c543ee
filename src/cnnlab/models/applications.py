"""ImageNet backbones from Keras Applications, for fine-tuning on your own images.

Registered as ``keras_resnet50``, ``keras_mobilenet_v2``, ``keras_mobilenet_v3_small``,
``keras_efficientnet_b0`` and ``keras_convnext_tiny``. Each model is

    image -> imagenet_input (a fixed 1x1 convolution) -> backbone (the Keras Application,
    without its classifier) -> head (the application's own classifier layers, sized to num_classes)

and outputs logits, like every cnnlab model. ``imagenet_input`` is the application's own input
preprocessing written as one frozen affine map, so the model takes cnnlab's usual input (pixels
scaled to 0..1: ``normalize="unit"``; ``input_range=255`` for raw 0..255 pixels) and a
grayscale image is fed to all three colour channels (ImageNet weights expect three):

- ResNet50: "caffe" mode: RGB -> BGR, minus the ImageNet mean pixel (103.939, 116.779, 123.68)
  on 0..255 (``keras.applications.resnet50.preprocess_input``);
- MobileNetV2: "tf" mode: to -1..1 (``keras.applications.mobilenet_v2.preprocess_input``);
- MobileNetV3-Small, EfficientNet-B0, ConvNeXt-Tiny: 0..255 RGB; the application normalises
  inside (its ``include_preprocessing`` / Rescaling layers).

``weights=PATH`` loads ImageNet weights for the backbone from a file on disk (nothing is
downloaded): Keras's "no top" files, e.g. ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``
(see docs/your-own-images.md for the list and where to get them), or a ``.weights.h5`` saved from
a backbone of the same architecture. The backbone is the nested model named ``backbone``, which is
what :func:`cnnlab.models.transfer.freeze` freezes with ``"backbone"``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models.registration import register_model

layers = keras.layers

TAGS = ("keras-applications",)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
KERAS_APPLICATIONS = "Keras Applications (https://keras.io/api/applications/)"

# name -> (application constructor name, preprocessing mode, head, paper, no-top weights file name)
APPLICATIONS = {
    "keras_resnet50": (
        "ResNet50",
        "caffe",
        "dense",
        "He, Zhang, Ren, Sun (2016), Deep Residual Learning for Image Recognition (CVPR)",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "keras_mobilenet_v2": (
        "MobileNetV2",
        "tf",
        "dense",
        "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR)",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    ),
    "keras_mobilenet_v3_small": (
        "MobileNetV3Small",
        "raw",
        "mobilenet_v3",
        "Howard et al. 2019, Searching for MobileNetV3 (ICCV)",
        "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    ),
    "keras_efficientnet_b0": (
        "EfficientNetB0",
        "raw",
        "dropout",
        "Tan, Le (2019), EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks (ICML)",
        "efficientnetb0_notop.h5",
    ),
    "keras_convnext_tiny": (
        "ConvNeXtTiny",
        "raw",
        "layernorm",
        "Liu et al. 2022, A ConvNet for the 2020s (CVPR)",
        "convnext_tiny_notop.h5",
    ),
}


def input_affine(mode: str, channels: int, input_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (1, 1, channels, 3) and bias (3,) of the fixed map from cnnlab's input to the backbone's."""
    scale = 255.0 / float(input_range)  # to 0..255
    kernel = np.zeros((1, 1, channels, 3), np.float32)
    bias = np.zeros(3, np.float32)
    for out in range(3):
        source = 2 - out if mode == "caffe" else out  # caffe: BGR order
        kernel[0, 0, source if channels == 3 else 0, out] = scale
    if mode == "caffe":
        bias[:] = [-m for m in CAFFE_MEAN_BGR]
    elif mode == "tf":  # x / 127.5 - 1
        kernel /= 127.5
        bias[:] = -1.0
    return kernel, bias


def backbone(name: str, input_shape, weights=None):
    """The Keras Application of ``name`` without its classifier, named ``backbone`` (3 input channels)."""
    constructor, _, _, _, _ = APPLICATIONS[name]
    if weights is not None:
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise ModelError(
                f"{name}: weights file {weights} not found (ImageNet weights are not downloaded: "
                f"give the path of {APPLICATIONS[name][4]} or a .weights.h5 file)"
            )
    kwargs = {"include_top": False, "weights": None, "input_shape": (int(input_shape[0]), int(input_shape[1]), 3)}
    if constructor in ("MobileNetV3Small", "ConvNeXtTiny"):
        kwargs["include_preprocessing"] = True
    model = getattr(keras.applications, constructor)(**kwargs)
    model.name = "backbone"
    if weights is not None:
        try:
            with warnings.catch_warnings():  # Keras 3 notes containers it skips; the layers load
                warnings.filterwarnings("ignore", message="Skipping nested container")
                model.load_weights(weights)
        except Exception as exc:  # Keras raises ValueError/KeyError/OSError for a file of another model
            raise ModelError(
                f"{name}: cannot load weights from {weights} into the {constructor} backbone "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
    return model


def application(
    input_shape=(224, 224, 3),
    num_classes=10,
    *,
    application="keras_resnet50",
    weights=None,
    input_range=1.0,
    dropout=None,
):
    """A Keras Application backbone with cnnlab's input convention and a new classifier head.

    ``weights``: path of ImageNet (or other) backbone weights on disk; None for random weights.
    ``input_range``: the input value of a white pixel (1.0 for ``normalize="unit"``, 255 for
    ``normalize="none"``). ``dropout``: before the classifier (default: the application's own,
    0.2 for EfficientNet-B0 and MobileNetV3-Small, none otherwise).
    """
    if application not in APPLICATIONS:
        raise ModelError(f"application: expected one of {', '.join(APPLICATIONS)}, got {application!r}")
    _, mode, head, _, _ = APPLICATIONS[application]
    channels = int(input_shape[2])
    if channels not in (1, 3):
        raise ModelError(f"{application}: expects 1 or 3 input channels, got {channels}")
    if not float(input_range) > 0:
        raise ModelError(f"{application}: input_range must be positive, got {input_range}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    kernel, bias = input_affine(mode, channels, input_range)
    fixed = layers.Conv2D(3, 1, name="imagenet_input", trainable=False, dtype="float32")
    x = fixed(inputs)
    fixed.set_weights([kernel, bias])
    x = backbone(application, input_shape, weights)(x)
    default_dropout = 0.2 if head in ("dropout", "mobilenet_v3") else 0.0
    rate = default_dropout if dropout is None else float(dropout)
    if head == "mobilenet_v3":  # Keras's MobileNetV3 top: pooled 1x1 conv to 1024, hard-swish, dropout
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Conv2D(1024, 1, use_bias=True, name="Conv_2")(x)
        x = layers.Activation("hard_swish", name="hard_swish")(x)
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if head == "layernorm":  # ConvNeXt's head normalises the pooled features
            x = layers.LayerNormalization(epsilon=1e-6, name="head_layernorm")(x)
    if rate:
        x = layers.Dropout(rate, name="top_dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=application)


def _builder(name: str):
    """``application`` for one backbone: the backbone is the model's name, not an option of it."""

    def build(input_shape=(224, 224, 3), num_classes=10, *, weights=None, input_range=1.0, dropout=None):
        return application(
            input_shape, num_classes, application=name, weights=weights, input_range=input_range, dropout=dropout
        )

    build.__name__ = name
    build.__doc__ = application.__doc__
    return build


for _name, (_constructor, _mode, _head, _paper, _file) in APPLICATIONS.items():
    register_model(
        _name,
        description=f"{_constructor} from Keras Applications (ImageNet weights from a file: weights=PATH), new head",
        paper=_paper,
        input_shape=(224, 224, 3),
        min_size=32,
        reference_note=f"{KERAS_APPLICATIONS}; the backbone is unchanged, the head is sized to the classes",
        quick_size=32,
        batch_norm=_constructor != "ConvNeXtTiny",  # ConvNeXt normalises with LayerNorm
        tags=TAGS,
    )(_builder(_name))
