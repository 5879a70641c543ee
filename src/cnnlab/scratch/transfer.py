"""Weights both ways between a Keras model and its scratch twin.

``from_keras`` reads the Keras model layer by layer (its configuration, not its name), so any
chain of the supported layers becomes a scratch network, registry models with non-default
options included; the twin keeps ``model.name``. ``to_keras`` rebuilds the registry model
``net.name`` with ``cnnlab.models.create_model`` and copies the weights in. Keras is imported
only inside these functions: the rest of ``cnnlab.scratch`` needs NumPy alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ModelError
from cnnlab.scratch.layers import AveragePool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from cnnlab.scratch.network import Sequential

__all__ = ["from_keras", "to_keras", "layers_from_keras"]

_SKIPPED = {"InputLayer"}  # no computation


def from_keras(model: Any, *, dtype="float32", seed: int = 0) -> Sequential:
    """A scratch ``Sequential`` computing what the Keras ``model`` computes, with its weights copied.

    ``model`` must be a chain (each layer feeding the next) of Conv2D, MaxPooling2D,
    AveragePooling2D, Flatten, Dense, Dropout, BatchNormalization, ReLU or relu/linear
    Activation layers, channels-last; anything else is a :class:`ModelError` naming the layer.
    """
    layers: list[Layer] = []
    for keras_layer in model.layers:
        layers += layers_from_keras(keras_layer)
    input_shape = tuple(model.input_shape[1:])
    net = Sequential(layers, input_shape, name=model.name, seed=seed, dtype=dtype)
    if tuple(net.output_shape) != tuple(model.output_shape[1:]):
        raise ModelError(
            f"{model.name}: scratch twin outputs {net.output_shape}, Keras model {tuple(model.output_shape[1:])}; "
            "only chains of layers are supported"
        )
    net.set_weights([np.asarray(w) for w in model.get_weights()])
    return net


def layers_from_keras(layer: Any) -> list[Layer]:
    """The scratch layer(s) equivalent to one Keras layer (a fused ReLU becomes its own layer)."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind in _SKIPPED:
        return []
    if kind == "Conv2D":
        _require(layer, config.get("data_format", "channels_last") == "channels_last", "channels_last data")
        _require(layer, tuple(config.get("dilation_rate", (1, 1))) == (1, 1), "dilation_rate 1")
        _require(layer, config.get("groups", 1) == 1, "groups 1")
        main = Conv2D(
            config["filters"], config["kernel_size"], config["strides"], config["padding"],
            use_bias=config["use_bias"], name=layer.name,
        )  # fmt: skip
        return [main, *_activation(layer, config.get("activation", "linear"))]
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        _require(layer, config.get("data_format", "channels_last") == "channels_last", "channels_last data")
        Pool = MaxPool2D if kind == "MaxPooling2D" else AveragePool2D
        return [Pool(config["pool_size"], config["strides"], config["padding"], name=layer.name)]
    if kind == "Dense":
        main = Dense(config["units"], use_bias=config["use_bias"], name=layer.name)
        return [main, *_activation(layer, config.get("activation", "linear"))]
    if kind == "Flatten":
        return [Flatten(name=layer.name)]
    if kind == "Dropout":
        return [Dropout(config["rate"], seed=config.get("seed"), name=layer.name)]
    if kind == "BatchNormalization":
        axis = config.get("axis", -1)
        _require(layer, axis in (-1, 3, [-1], [3]), "axis -1 (channels last)")
        _require(layer, config.get("center", True) and config.get("scale", True), "center and scale")
        return [BatchNorm(config["momentum"], config["epsilon"], name=layer.name)]
    if kind == "ReLU":
        plain = not config.get("max_value") and not config.get("negative_slope") and not config.get("threshold")
        _require(layer, plain, "a plain ReLU (no max_value, slope or threshold)")
        return [ReLU(name=layer.name)]
    if kind == "Activation":
        return _activation(layer, config["activation"])
    raise ModelError(f"{layer.name}: Keras layer {kind} has no scratch equivalent")


def _activation(layer: Any, activation: Any) -> list[Layer]:
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", str(activation))
    if name == "linear":
        return []
    if name == "relu":
        return [ReLU(name=f"{layer.name}_relu")]
    raise ModelError(f"{layer.name}: activation {name!r} has no scratch equivalent (expected relu or linear)")


def _require(layer: Any, condition: bool, what: str) -> None:
    if not condition:
        raise ModelError(f"{layer.name}: the scratch twin supports only {what}")


def to_keras(net: Sequential, **options: Any) -> Any:
    """The registry Keras model ``net.name`` (same input shape and classes) with ``net``'s weights.

    ``options`` default to those ``net`` was built with (``cnnlab.scratch.build(..., **options)``).
    """
    from cnnlab.models import create_model

    model = create_model(net.name, net.input_shape, int(net.output_shape[-1]), **(options or net.options))
    weights, targets = net.get_weights(), model.get_weights()
    if [w.shape for w in weights] != [t.shape for t in targets]:
        raise ModelError(
            f"{net.name}: scratch weights {[w.shape for w in weights]} do not fit the Keras model "
            f"{[t.shape for t in targets]}"
        )
    model.set_weights([w.astype(t.dtype) for w, t in zip(weights, targets)])
    return model
