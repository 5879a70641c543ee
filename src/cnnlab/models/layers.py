"""Layers cnnlab's models are built from where Keras's own is slow on the default backend.

Each is a subclass of the Keras layer with the same name, arguments, weights and maths, so a
saved model, ``count_flops`` and the NumPy level (``cnnlab.scratch.from_keras``) treat it as the
Keras layer; only the kernel that runs differs, and only where the comment says so.
"""

from __future__ import annotations

from cnnlab._keras import keras


@keras.saving.register_keras_serializable(package="cnnlab")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's ``BatchNormalization``; in training on TensorFlow and torch, one fused kernel.

    Keras 3 computes the batch moments and the normalisation as separate operations, each a pass
    over the activations (and as many again in the backward pass). TensorFlow's
    ``FusedBatchNormV3`` (oneDNN on a CPU) does the forward in one kernel and the backward in
    another: 3x faster in float32 and 4x in bfloat16 for a 64x32x32x32 batch on this project's
    benchmark machine (docs/performance.md), which makes it the largest single cost of ``vgg_bn``
    otherwise. The maths is Keras's: normalise by the batch's biased variance, and update the
    moving statistics with the biased variance too (the fused op returns the unbiased one, so it
    is scaled back by (n - 1) / n). On torch the same holds for ``torch.native_batch_norm``
    (one pass forward, one backward, against Keras's five element-wise operations and their
    gradients; 6-7x faster on a 64x32x32x32 batch): it returns the batch mean and 1/sqrt(variance
    + epsilon), from which the biased variance is recovered for the moving average. Inference,
    masks, renormalisation, a non-channels-last axis and JAX (where XLA fuses Keras's operations
    itself) use Keras's own code.
    """

    def __init__(self, *args, offset_scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        # The offset used is offset_scale x beta: SGD then moves the offset offset_scale**2 times
        # faster than a plain bias (airbench's "bias scaler", without a second optimizer).
        self.offset_scale = float(offset_scale)

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and self._fusable(inputs, mask):
            if keras.backend.backend() == "torch":
                return self._fused_torch_training_call(inputs)
            return self._fused_training_call(inputs)
        outputs = super().call(inputs, training=training, mask=mask)
        if self.center and self.offset_scale != 1.0:
            outputs = outputs + keras.ops.cast(self.beta * (self.offset_scale - 1.0), outputs.dtype)
        return outputs

    def get_config(self):
        return {**super().get_config(), "offset_scale": self.offset_scale}

    def _fusable(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() in ("tensorflow", "torch")
            and mask is None
            and not self.renorm
            and not getattr(self, "synchronized", False)
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def _fused_training_call(self, inputs):
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones([channels], "float32")
        offset = self.beta * self.offset_scale if self.center else tf.zeros([channels], "float32")
        # bfloat16 / float16 activations are accepted as they are: the op computes in float32.
        # The raw op, not tf.nn's wrapper: the wrapper raises epsilon to cuDNN's minimum 1.001e-5.
        outputs, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(scale, "float32"),
            offset=tf.cast(offset, "float32"),
            mean=tf.zeros([0], "float32"),
            variance=tf.zeros([0], "float32"),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = unbiased_variance * (count - 1.0) / count
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)

    def _fused_torch_training_call(self, inputs):
        import torch

        if inputs.dtype not in (torch.float32, torch.bfloat16):
            return super().call(inputs, training=True)
        weight = keras.ops.convert_to_tensor(self.gamma) if self.scale else None
        bias = keras.ops.convert_to_tensor(self.beta) * self.offset_scale if self.center else None
        # NHWC as Keras sees it, NCHW as torch's kernel expects: a permuted view, no copy (with
        # cnnlab.torch_layout the memory is already channels-last, which the CPU kernel prefers).
        # bfloat16 inputs with float32 weights are accepted as they are: the kernel computes in
        # float32, as Keras's code does after its cast.
        outputs, mean, inverse_std = torch.native_batch_norm(
            inputs.permute(0, 3, 1, 2), weight, bias, None, None, True, 0.0, self.epsilon
        )
        with torch.no_grad():
            variance = torch.clamp(inverse_std.float().pow(-2) - self.epsilon, min=0.0)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean.value * momentum + mean.float() * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance.value * momentum + variance * (1.0 - momentum))
        return keras.ops.cast(outputs.permute(0, 2, 3, 1), self.compute_dtype)


def walk_layers(model):
    """Every layer of ``model``, nested models' layers included, outermost first."""
    pending = list(model.layers)
    while pending:
        layer = pending.pop(0)
        yield layer
        pending.extend(getattr(layer, "layers", []))
