"""The reference networks of the tutorials in ``seeds/``, layer for layer.

Their weighted layers, in order, are a contract (docs/architecture.md): the NumPy (scratch) and
low-level twins copy ``model.get_weights()`` in this order, so layer order, shapes and bias
use must not change. Parameter counts for 10 classes are exact: softmax 7,850, lenet5 61,706,
mnist_cnn 1,111,946, cifar_cnn 1,379,274, vgg_bn 552,362 (551,466 trainable).
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models.blocks import model_input
from cnnlab.models.layers import BatchNormalization
from cnnlab.models.options import mnist_cnn_widths
from cnnlab.models.registration import register_model

layers = keras.layers


def _max_norm(value):
    """A max-norm kernel constraint (``keras.constraints.MaxNorm``) or none."""
    return keras.constraints.MaxNorm(value) if value else None


def _rates(name: str, value, count: int) -> tuple[float, ...]:
    """A dropout rate, or one per block; each in [0, 1)."""
    rates = tuple(value) if isinstance(value, (list, tuple)) else (value,) * count
    if len(rates) != count or not all(0 <= float(r) < 1 for r in rates):
        raise ModelError(f"{name}: expected {count} dropout rates in [0, 1), got {value!r}")
    return tuple(float(r) for r in rates)


@register_model(
    "softmax",
    description="Logistic regression: one dense layer on the flattened image",
    paper="tntrung, Learning basic TensorFlow, Keras by examples of CNN implementation! – Part I, example 1 (TensorFlow MNIST softmax tutorial)",
    input_shape=(28, 28, 1),
    min_size=1,
    reference_params=7850,
    reference_counts_all=True,
    batch_norm=False,
)
def softmax(input_shape=(28, 28, 1), num_classes=10, *, kernel_initializer="glorot_uniform"):
    """Multinomial logistic regression, ``logits = flatten(x) @ W + b``.

    tntrung's tutorial ("MNIST classification by logistic regression") initialises W and b with zeros,
    which works for this convex model: pass ``kernel_initializer="zeros"`` to repeat it.
    """
    inputs = model_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    outputs = layers.Dense(num_classes, kernel_initializer=kernel_initializer, name="logits")(x)
    return keras.Model(inputs, outputs, name="softmax")


def _lenet_initializers(init: str):
    """(kernel, conv bias, dense bias) initialisers for ``lenet5``'s ``init`` option."""
    if init == "glorot":
        return "glorot_uniform", "zeros", "zeros"
    if init == "seed0":
        # tntrung's init_weight: truncated normal, stddev 0.1; init_bias: constant 0.1. Its code
        # initialises the dense biases with init_weight, not init_bias; kept as written.
        normal = keras.initializers.TruncatedNormal(stddev=0.1)
        return normal, keras.initializers.Constant(0.1), normal
    raise ModelError(f"lenet5: option init must be 'glorot' or 'seed0', got {init!r}")


@register_model(
    "lenet5",
    description="LeNet-5: two 5x5 conv + max-pool stages, dense 120-84-classes",
    paper="LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition (code from tntrung, Learning basic TensorFlow, Keras by examples of CNN implementation! – Part I)",
    input_shape=(32, 32, 1),
    min_size=16,
    reference_params=61706,
    reference_counts_all=True,
    batch_norm=False,
)
def lenet5(input_shape=(32, 32, 1), num_classes=10, *, init="glorot"):
    """LeNet-5 as in tntrung's tutorial (LeCun et al. 1998, with ReLU and max-pooling).

    32x32 input (MNIST zero-padded by 2), conv 5x5x6 valid + ReLU, max-pool 2/2, conv 5x5x16
    valid + ReLU, max-pool 2/2, flatten 400, dense 120 + ReLU, dense 84 + ReLU, dense classes.
    ``init="seed0"`` uses tntrung's initialisers (truncated normal 0.1, conv biases 0.1).
    """
    kernel, conv_bias, dense_bias = _lenet_initializers(init)
    inputs = model_input(input_shape)
    x = inputs
    for i, filters in enumerate((6, 16), start=1):
        x = layers.Conv2D(
            filters,
            5,
            padding="valid",
            activation="relu",
            kernel_initializer=kernel,
            bias_initializer=conv_bias,
            name=f"conv{i}",
        )(x)
        x = layers.MaxPooling2D(2, strides=2, padding="valid", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate((120, 84), start=1):
        x = layers.Dense(
            units, activation="relu", kernel_initializer=kernel, bias_initializer=dense_bias, name=f"fc{i}"
        )(x)
    outputs = layers.Dense(num_classes, kernel_initializer=kernel, bias_initializer=dense_bias, name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet5")


@register_model(
    "mnist_cnn",
    description="Two 5x5 conv (32, 64) + SAME max-pool, dense 1024, dropout 0.5",
    paper="Hsi-Pin Ma, Classifying Images with Deep Convolutional Neural Networks (after Raschka, Python Machine Learning ch. 15: a CNN for MNIST in TensorFlow)",
    input_shape=(28, 28, 1),
    min_size=13,
    reference_params=1111946,
    reference_counts_all=True,
    batch_norm=False,
)
def mnist_cnn(input_shape=(28, 28, 1), num_classes=10, *, dropout=0.5, filters=(32, 64), units=1024):
    """Hsi-Pin Ma's MNIST network: 28x28x1, conv 5x5x32 valid + ReLU, max-pool 2/2 SAME,
    conv 5x5x64 valid + ReLU, max-pool 2/2 SAME, dense 1024 + ReLU, dropout, dense classes.

    ``filters`` (the two convolutions' widths) and ``units`` (the hidden dense layer's) narrow it
    for speed; the defaults are Hsi-Pin Ma's. Initialisers are Keras's defaults, which are
    Hsi-Pin Ma's (``tf.get_variable``'s Glorot uniform kernels, zero biases).
    """
    (rate,) = _rates("mnist_cnn", dropout, 1)
    filters, units = mnist_cnn_widths(filters, units)
    inputs = model_input(input_shape)
    x = inputs
    for i, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, 5, padding="valid", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(units, activation="relu", name="fc1")(x)
    x = layers.Dropout(rate, name="dropout1")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


@register_model(
    "cifar_cnn",
    description="Three 3x3 conv (32, 64, 128) + pool + dropout blocks, no biases, dense 625",
    paper="Richard Kuo, Classification Using Keras and Tensorflow (2018)",
    input_shape=(32, 32, 3),
    min_size=1,
    reference_params=1379274,
    reference_counts_all=True,
    batch_norm=False,
)
def cifar_cnn(
    input_shape=(32, 32, 3), num_classes=10, *, conv_dropout=0.2, dense_dropout=0.5, stddev=0.01, max_norm=None
):
    """Richard Kuo's TensorFlow CIFAR-10 network, without biases anywhere.

    Three blocks of conv 3x3 SAME (32, 64, 128) + ReLU + max-pool 2/2 SAME + dropout (keep 0.8),
    dense 625 + ReLU + dropout 0.5, dense classes. Weights ~ normal(0, ``stddev``=0.01). As in
    Richard Kuo's ``model()``, the third conv dropout comes after the reshape to a vector (the same
    operation, element-wise). ``max_norm`` adds a max-norm constraint to every kernel (Richard Kuo's tutorial
    imports ``maxnorm`` for its Keras version).
    """
    conv_rate, dense_rate = _rates("cifar_cnn", conv_dropout, 1)[0], _rates("cifar_cnn", dense_dropout, 1)[0]
    init = keras.initializers.RandomNormal(stddev=stddev)
    constraint = _max_norm(max_norm)
    inputs = model_input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            use_bias=False,
            kernel_initializer=init,
            kernel_constraint=constraint,
            name=f"conv{i}",
        )(x)
        x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{i}")(x)
        if i == 3:
            x = layers.Flatten(name="flatten")(x)
        x = layers.Dropout(conv_rate, name=f"dropout{i}")(x)
    x = layers.Dense(
        625, activation="relu", use_bias=False, kernel_initializer=init, kernel_constraint=constraint, name="fc1"
    )(x)
    x = layers.Dropout(dense_rate, name="dropout_fc1")(x)
    outputs = layers.Dense(
        num_classes, use_bias=False, kernel_initializer=init, kernel_constraint=constraint, name="logits"
    )(x)
    return keras.Model(inputs, outputs, name="cifar_cnn")


@register_model(
    "vgg_bn",
    description="VGG-style 3 blocks of 2 conv (32, 64, 128) + BN + pool + dropout, dense 128",
    paper="Jake Tae, Convolutional Neural Network with Keras (after Chollet, Deep Learning with Python; machinelearningmastery CIFAR-10 VGG)",
    input_shape=(32, 32, 3),
    min_size=8,
    reference_params=552362,
    reference_counts_all=True,
    reference_note="552,362 total / 551,466 trainable as printed by Jake Tae's summary, which has no "
    "BatchNormalization after Dense(128); its code has one (dense_batchnorm=True: +512, 552,874 total)",
)
def vgg_bn(
    input_shape=(32, 32, 3),
    num_classes=10,
    *,
    dropout=(0.2, 0.3, 0.4),
    dense_dropout=0.5,
    dense_batchnorm=False,
    kernel_initializer="he_uniform",
    max_norm=None,
):
    """Jake Tae's network: three blocks of [conv 3x3 SAME + ReLU + BN] x 2, max-pool 2, dropout
    (0.2, 0.3, 0.4); flatten, dense 128 + ReLU, dropout 0.5, dense classes.

    Jake Tae's printed summary (552,362 parameters, 551,466 trainable) has no batch norm after
    the dense 128 layer, though its code shows one; the default follows the summary and
    ``dense_batchnorm=True`` follows the code. Conv kernels use He uniform initialisation as in
    Jake Tae's tutorial; the dense layers keep Keras's default (Glorot uniform), as there.
    """
    rates = _rates("vgg_bn", dropout, 3)
    (dense_rate,) = _rates("vgg_bn", dense_dropout, 1)
    constraint = _max_norm(max_norm)
    inputs = model_input(input_shape)
    x = inputs
    for block, (filters, rate) in enumerate(zip((32, 64, 128), rates), start=1):
        for i in (1, 2):
            x = layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=kernel_initializer,
                kernel_constraint=constraint,
                name=f"block{block}_conv{i}",
            )(x)
            x = BatchNormalization(name=f"block{block}_bn{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = layers.Dropout(rate, name=f"block{block}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", kernel_constraint=constraint, name="fc1")(x)
    if dense_batchnorm:
        x = BatchNormalization(name="fc1_bn")(x)
    x = layers.Dropout(dense_rate, name="dropout_fc1")(x)
    outputs = layers.Dense(num_classes, kernel_constraint=constraint, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg_bn")
