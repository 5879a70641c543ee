"""Weight transfer between a Keras model (level 3) and its low-level twin (level 2).

Both hold the same list of arrays in the same order and shapes (``docs/architecture.md``), so a
transfer is ``get_weights()`` on one side and ``set_weights()`` on the other.
"""

from __future__ import annotations

from cnnlab.errors import ModelError
from cnnlab.lowlevel.networks import ARCHITECTURES, LowLevelNet, build


def from_keras(model, seed: int = 0) -> LowLevelNet:
    """The low-level twin of a cnnlab Keras ``model`` (chosen by ``model.name``), with its weights."""
    if model.name not in ARCHITECTURES:
        raise ModelError(f"model {model.name!r}: no low-level twin; expected one of {', '.join(ARCHITECTURES)}")
    input_shape = tuple(model.input_shape[1:])
    num_classes = int(model.output_shape[-1])
    net = build(model.name, input_shape, num_classes, seed=seed, **_options(model))
    net.set_weights(model.get_weights())
    return net


def to_keras(net: LowLevelNet):
    """A cnnlab Keras model (``cnnlab.models.create_model``) holding ``net``'s weights."""
    from cnnlab.models import create_model

    model = create_model(net.name, input_shape=net.input_shape, num_classes=net.num_classes, **net.options)
    expected = [tuple(w.shape) for w in model.weights]
    got = [tuple(v.shape) for v in net.variables]
    if expected != got:
        raise ModelError(f"{net.name}: Keras model weights {expected} do not match the low-level twin's {got}")
    model.set_weights(net.get_weights())
    return model


def _options(model) -> dict:
    """The Keras model's dropout rates (so that the twin trains the same way) and widths."""
    from cnnlab._keras import keras

    rates = [float(layer.rate) for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    if model.name == "mnist_cnn" and len(rates) == 1:
        widths = [model.get_layer(name).kernel.shape[-1] for name in ("conv1", "conv2", "fc1")]
        return {"dropout": rates[0], "filters": [int(w) for w in widths[:2]], "units": int(widths[2])}
    if model.name == "cifar_cnn" and len(rates) == 4:  # three after the conv blocks, one after fc
        return {"conv_dropout": rates[0], "dense_dropout": rates[-1]}
    return {}
