"""Split batches: one training step computed as equal parts of its batch at once, one per CPU core.

A small network's step (LeNet-5 at batch 100: a few milliseconds) is made of small ops that one
op's worth of threads cannot keep two cores busy with. Cut the batch in two instead, and the two
halves' forward and backward passes are independent ops that TensorFlow's inter-op threads run at
the same time, one core each, on the same weights; their gradients are averaged and applied
once. The gradient of the batch's mean loss is the mean of the halves' gradients, so this is
the same step (to float rounding); only dropout draws its masks per part. A network with batch
normalisation is never split: its step depends on statistics of the whole batch.

``--split-batch 0`` (auto) is resolved with the rest of the runtime when the run starts
(:func:`cnnlab.runtime.resolve_runtime`) and stored in the run's config, so a resumed run splits
the same way. docs/performance.md (decision 10) has the measurements.
"""

from __future__ import annotations

from cnnlab.errors import ConfigError


def check_split(model, parts: int, backend: str) -> None:
    """Refuse a split the engine cannot do the same step with (one line, before anything is written)."""
    if parts <= 1:
        return
    if backend != "tensorflow":
        raise ConfigError(f"--split-batch: splitting batches needs the TensorFlow backend, not {backend}")
    from cnnlab._keras import keras
    from cnnlab.models.layers import walk_layers

    norms = [layer.name for layer in walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if norms:
        raise ConfigError(
            f"--split-batch: {model.name} normalises over the batch (layer {norms[0]!r}); "
            f"splitting it would change the step: use --split-batch 1"
        )


def split_train_step(model, x, y, parts: int, sample_weight=None):
    """Keras's ``train_step`` on ``x``, ``y`` computed as ``parts`` equal parts of the batch.

    Each part's forward pass, loss and gradients are independent of the others', so TensorFlow
    can run them on different cores; the mean gradient is applied once, and the loss and the
    metrics see the whole batch, as in Keras's step. ``sample_weight`` (``--class-weight``) weighs
    each image's loss, the mean over the batch as Keras's loss reduction takes it. Runs inside a
    ``tf.function``.
    """
    import tensorflow as tf

    gradients, predictions, losses = [], [], []
    weights = [None] * parts if sample_weight is None else tf.split(sample_weight, parts)
    for x_part, y_part, w_part in zip(tf.split(x, parts), tf.split(y, parts), weights):
        with tf.GradientTape() as tape:
            prediction = model(x_part, training=True)
            loss = model.compute_loss(x=x_part, y=y_part, y_pred=prediction, sample_weight=w_part, training=True)
            scaled = model.optimizer.scale_loss(loss)  # loss scaling under mixed_float16, else itself
        gradients.append(tape.gradient(scaled, model.trainable_weights))
        predictions.append(prediction)
        losses.append(loss)
    mean_gradients = [tf.add_n(list(per_part)) / parts for per_part in zip(*gradients)]
    model.optimizer.apply_gradients(zip(mean_gradients, model.trainable_weights))
    # Keras's train_step feeds its loss tracker (the "loss" metric) the same way; it has no public handle.
    model._loss_tracker.update_state(tf.add_n(losses) / parts, sample_weight=tf.shape(x)[0])
    return model.compute_metrics(x, y, tf.concat(predictions, axis=0), sample_weight=None)
