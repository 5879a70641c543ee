"""Level 2: networks built from raw ops with explicit variables and a hand-written training loop.

The middle of cnnlab's three levels (``docs/levels.md``): below it, :mod:`cnnlab.scratch` writes
every layer's forward and backward pass in NumPy; above it, :mod:`cnnlab.models` uses Keras layers
and ``model.fit``. Here the network is a plain function of raw ops (``keras.ops.conv``,
``max_pool``, ``matmul``) over a list of ``keras.Variable``, as in tntrung's ``cnn_layers.py`` and
Hsi-Pin Ma's ``conv_layer`` / ``fc_layer``, and training is a loop written out: loss, gradients from
the backend (``tf.GradientTape``, ``jax.value_and_grad``, ``loss.backward()``), optimizer update.

    from cnnlab import lowlevel
    net = lowlevel.build("lenet5", (32, 32, 1), 10, verbose=True)   # prints variables and tensors
    loss, acc = lowlevel.train_step(net, lowlevel.SGD(0.1), x_batch, y_batch)
    lowlevel.save_checkpoint(net, "lenet5.npz")
    model = lowlevel.to_keras(net)                                   # the same weights, in Keras

Modules: :mod:`.layers` (initialisers, raw ops, Hsi-Pin Ma's layers), :mod:`.networks` (softmax,
lenet5, mnist_cnn, cifar_cnn and :class:`LowLevelNet`), :mod:`.training` (the loop),
:mod:`.checkpoint`, :mod:`.transfer` (to and from Keras).
"""

from cnnlab.lowlevel.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.lowlevel.networks import LowLevelNet, build, list_networks
from cnnlab.lowlevel.training import (
    SGD,
    accuracy,
    cross_entropy,
    evaluate,
    fit,
    gradients,
    predict_logits,
    train_step,
)
from cnnlab.lowlevel.transfer import from_keras, to_keras

__all__ = [
    "LowLevelNet",
    "SGD",
    "accuracy",
    "build",
    "cross_entropy",
    "evaluate",
    "fit",
    "from_keras",
    "gradients",
    "list_networks",
    "load_checkpoint",
    "predict_logits",
    "save_checkpoint",
    "to_keras",
    "train_step",
]
