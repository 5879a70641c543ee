"""airbench94: the fastest known way to 94% on CIFAR-10, as a Keras model.

Keller Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (arXiv:2404.00498). A
plain (residual-free) VGG-like network of three conv-pool-conv groups, tuned for accuracy per
FLOP rather than per parameter:

- a first 2x2 convolution whose filters are *not learned* but set from the training images
  (:class:`PatchWhitening`): the eigenvectors of the 2x2-patch covariance, scaled to unit
  variance, and their negatives, so the next layers see decorrelated input from step one;
- batch norms without a learned scale, with a fast-moving average that keeps 60% of the running
  statistics at each step (Keras ``momentum=0.6``; airbench passes ``momentum=1 - 0.6`` to
  PyTorch, whose momentum is the weight of the *new* batch) and biases that learn 64x faster
  (``offset_scale=8``);
- GELU activations, identity ("Dirac") initialisation of the first filters of every conv;
- global max pooling and an unbiased linear classifier scaled by 1/9.

Its training recipe (``recipes/fast-cifar10-90.toml``) adds label smoothing 0.2, SGD-Nesterov
with a large rate, flip and 2-pixel translation, and test-time flip.
"""

from __future__ import annotations

import numpy as np

from cnnlab._keras import keras
from cnnlab.models.blocks import model_input
from cnnlab.models.layers import BatchNormalization
from cnnlab.models.registration import register_model

layers = keras.layers

JORDAN_2024 = "Jordan 2024, 94% on CIFAR-10 in 3.29 Seconds on a Single GPU (arXiv:2404.00498; airbench94)"

# PyTorch's default convolution initialisation (Kaiming-uniform with a = sqrt(5)), as airbench uses.
TORCH_CONV_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1 / 3, "mode": "fan_in", "distribution": "uniform"},
}


@keras.saving.register_keras_serializable(package="cnnlab")
class PartialDirac(keras.initializers.Initializer):
    """A conv kernel whose first ``min(in, out)`` filters are the identity (a 1 at the centre tap
    of their own channel) and whose other filters come from ``base``: at initialisation the
    block passes its input through, and only the extra filters start random."""

    def __init__(self, base=TORCH_CONV_INIT, seed=None):
        self.base = base
        self.seed = seed

    def __call__(self, shape, dtype=None):
        base = keras.initializers.get(self.base)
        if self.seed is not None:
            base.seed = self.seed
        kernel = np.array(keras.ops.convert_to_numpy(base(shape, dtype="float32")))
        kh, kw, channels_in, channels_out = shape
        identity = min(channels_in, channels_out)
        kernel[..., :identity] = 0.0
        kernel[kh // 2, kw // 2, np.arange(identity), np.arange(identity)] = 1.0
        return keras.ops.cast(kernel, dtype or "float32")

    def get_config(self):
        return {"base": self.base, "seed": self.seed}


@keras.saving.register_keras_serializable(package="cnnlab")
class PatchWhitening(layers.Conv2D):
    """A ``Conv2D`` whose kernel is set from data by :meth:`adapt` and never trained.

    ``adapt(images)`` takes the (uncentred) covariance of every ``k x k`` patch of ``images``,
    and sets the first half of the filters to its eigenvectors divided by sqrt(eigenvalue + eps)
    (a ZCA-style whitening of patches) and the second half to their negatives, so that a
    following ReLU or GELU loses nothing. Only the bias trains. It is a ``Conv2D`` for saving,
    FLOP counting and the NumPy level.
    """

    def __init__(self, filters, kernel_size=2, eps=5e-4, **kwargs):
        kwargs.setdefault("padding", "valid")
        super().__init__(filters, kernel_size, **kwargs)
        self.eps = float(eps)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel.trainable = False

    # Keras's ``Layer.trainable`` setter sets every variable of the layer to the value: unfreezing
    # (``cnnlab.models.transfer.unfreeze``, ``--unfreeze-at``) would make the kernel trainable and
    # hand the optimizer a variable it was not built with. The kernel stays fixed; the bias follows.
    @layers.Conv2D.trainable.setter
    def trainable(self, value):
        layers.Conv2D.trainable.fset(self, value)
        if getattr(self, "built", False):
            self.kernel.trainable = False

    def adapt(self, images) -> None:
        """Set the filters from ``images`` (N, H, W, C), preprocessed as the model will see them."""
        kh, kw, channels, filters = self.kernel.shape
        if filters != 2 * kh * kw * channels:
            raise ValueError(
                f"{self.name}: whitening needs 2 x {kh}x{kw}x{channels} = "
                f"{2 * kh * kw * channels} filters, has {filters}"
            )
        images = np.asarray(images, dtype="float64")
        covariance = np.zeros((kh * kw * channels,) * 2)
        count = 0
        for start in range(0, len(images), 500):  # 500 images of patches at a time: bounded memory
            windows = np.lib.stride_tricks.sliding_window_view(images[start : start + 500], (kh, kw), axis=(1, 2))
            patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * channels)  # (kh, kw, c) order
            covariance += patches.T @ patches
            count += len(patches)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance / count)
        filters_ = eigenvectors / np.sqrt(eigenvalues + self.eps)  # column i: eigenvector i, unit variance out
        kernel = np.concatenate([filters_, -filters_], axis=1).reshape(kh, kw, channels, filters)
        self.kernel.assign(kernel.astype("float32"))

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}


def _conv(x, filters: int, name: str):
    return layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=PartialDirac(), name=name)(x)


def _norm_act(x, name: str, activation: str, bn_momentum: float):
    x = BatchNormalization(momentum=bn_momentum, epsilon=1e-12, scale=False, offset_scale=8.0, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def _group(x, filters: int, name: str, activation: str, bn_momentum: float):
    """conv, max-pool 2, BN, act, conv, BN, act: pooling before the first norm halves its work."""
    x = _conv(x, filters, f"{name}_conv1")
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = _norm_act(x, f"{name}_1", activation, bn_momentum)
    x = _conv(x, filters, f"{name}_conv2")
    return _norm_act(x, f"{name}_2", activation, bn_momentum)


@register_model(
    "airbench",
    description="airbench94: whitened 2x2 stem, three conv-pool-conv groups; 94% CIFAR-10 in ~10 epochs",
    paper=JORDAN_2024,
    input_shape=(32, 32, 3),
    min_size=9,  # 2x2 stem (-1), then three 2x2 poolings: 9 -> 8 -> 4 -> 2 -> 1
    # The 1/9 logit scale suits airbench's large SGD rate; at the zoo's generic Adam 3e-3 a narrow
    # variant learns 128 images too slowly with it (2.34 -> 1.99 in 32 steps; 2.97 -> 1.03 at 1.0).
    quick_options={"widths": (8, 16, 16), "logit_scale": 1.0},
    quick_size=16,
)
def airbench(
    input_shape=(32, 32, 3),
    num_classes=10,
    *,
    widths=(64, 256, 256),
    whiten_kernel=2,
    activation="gelu",
    bn_momentum=0.6,
    logit_scale=1 / 9,
):
    """airbench94 (Jordan 2024): a :class:`PatchWhitening` stem of ``2 x 3 x k x k`` filters
    (k = ``whiten_kernel``) and an activation, three groups of ``widths`` filters (each conv,
    max-pool 2, BN, act, conv, BN, act), global max pooling, an unbiased dense layer and logits
    scaled by ``logit_scale``. Call ``adapt`` on the stem (``cnnlab train`` does) before training.
    ``bn_momentum`` is Keras's: the share of the moving statistics kept at each step.
    """
    inputs = model_input(input_shape)
    channels = int(input_shape[-1])
    x = PatchWhitening(2 * channels * whiten_kernel**2, whiten_kernel, name="whiten")(inputs)
    x = layers.Activation(activation, name=f"whiten_{activation}")(x)
    for index, filters in enumerate(widths, start=1):
        x = _group(x, int(filters), f"group{index}", activation, bn_momentum)
    x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="fc")(x)
    outputs = layers.Rescaling(logit_scale, name="logits")(x)
    return keras.Model(inputs, outputs, name="airbench")
