"""Small building blocks shared by the builders (in the style of ``keras.applications``).

Every helper takes a tensor and returns a tensor, and names its layers from a ``name`` prefix,
so layer names stay readable and stable (``stage2_block1_conv1``, ``stage2_block1_bn1``).
"""

from __future__ import annotations

from cnnlab._keras import keras
from cnnlab.models.layers import BatchNormalization

layers = keras.layers

# Batch-norm settings used by every modern network here: Keras's default momentum 0.99 is
# tuned for long ImageNet runs; 0.9 (PyTorch's 0.1) tracks the statistics of short CPU runs.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def model_input(input_shape, name: str = "image"):
    return keras.Input(shape=tuple(input_shape), name=name)


def batch_norm(x, name: str, *, scale: bool = True):
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, scale=scale, name=name)(x)


def conv(
    x,
    filters: int,
    kernel_size,
    name: str,
    *,
    strides=1,
    padding: str = "same",
    use_bias: bool = False,
    kernel_initializer="he_normal",
):
    """A plain convolution; biases are off because a batch norm follows almost everywhere."""
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=name,
    )(x)


def conv_bn_relu(
    x,
    filters: int,
    kernel_size,
    name: str,
    *,
    strides=1,
    padding: str = "same",
    use_bias: bool = False,
    bn_scale: bool = True,
    activation: str | None = "relu",
):
    """Conv -> BN -> activation, the post-activation unit of ResNet, VGG-BN and Inception."""
    x = conv(x, filters, kernel_size, f"{name}_conv", strides=strides, padding=padding, use_bias=use_bias)
    x = batch_norm(x, f"{name}_bn", scale=bn_scale)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def bn_relu(x, name: str):
    """BN -> ReLU, the pre-activation unit of pre-activation ResNets, Wide ResNets and DenseNets."""
    x = batch_norm(x, f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x)


def classifier(x, num_classes: int, *, name: str = "logits", pool: str = "avg"):
    """Global pooling then a dense layer giving logits (no softmax: losses use from_logits=True)."""
    if pool == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pool == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return layers.Dense(num_classes, name=name)(x)


@keras.saving.register_keras_serializable(package="cnnlab")
class ZeroPadShortcut(layers.Layer):
    """He et al. (2016) option-A shortcut: subsample by ``stride`` and zero-pad the channels.

    Parameter-free, so a ResNet's parameter count is that of its convolutions, batch norms and
    classifier only. The new channels are split evenly on both sides, as in the reference
    CIFAR implementations (``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``).
    """

    def __init__(self, out_channels: int, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.stride = int(stride)

    def call(self, x):
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        extra = self.out_channels - x.shape[-1]
        before = extra // 2
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def shrink(n):
            return None if n is None else -(-n // self.stride)

        return (batch, shrink(height), shrink(width), self.out_channels)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "stride": self.stride}
