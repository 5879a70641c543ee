"""Weights for fine-tuning: load by layer name and shape, freeze part of a network.

A minimal version of the two functions training needs (``--init-from``, ``--freeze``):

* :func:`load_weights_by_name` copies every layer whose name and weight shapes match a layer of
  the source (a run folder, a ``.keras`` file, a ``.weights.h5`` file or a Keras model) and
  reports what matched and what did not. A classifier head built for another class count does
  not match (its shapes differ) and keeps its fresh initialisation: the head is replaced.
* :func:`freeze` sets ``trainable = False`` on the leading layers named by a spec. Keras 3 runs a
  ``BatchNormalization`` layer that is not trainable in inference mode (its moving statistics
  are used and not updated), which is what fine-tuning a frozen backbone needs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError


@dataclass
class LoadReport:
    """What :func:`load_weights_by_name` did: the layers copied and the layers left as they were."""

    matched: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{len(self.matched)} layers loaded"
        if self.unmatched:
            text += f", {len(self.unmatched)} kept their initial weights ({', '.join(self.unmatched)})"
        return text


def weighted_layers(model) -> list:
    """The leaf layers that own weights, depth first, in the order the network applies them."""
    out = []

    def visit(layer):
        children = getattr(layer, "layers", None)
        if children:
            for child in children:
                visit(child)
        elif layer.weights:
            out.append(layer)

    for layer in model.layers:
        visit(layer)
    return out


def _source_arrays(source) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weight arrays, from a model, a run folder, a .keras or a .weights.h5 file."""
    if not isinstance(source, (str, os.PathLike)):
        return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in weighted_layers(source)}
    path = Path(source).expanduser()
    if path.is_dir():
        from cnnlab.training.run import Run

        try:
            model = Run.load(path).model()
        except Exception as exc:  # a RunError says what is missing
            raise ConfigError(f"--init-from: {path}: {exc}") from None
        return _source_arrays(model)
    if not path.is_file():
        raise ConfigError(f"--init-from: {path}: no such run folder or file")
    if path.name.endswith(".weights.h5"):
        return _h5_arrays(path)
    if path.suffix == ".keras":
        from cnnlab._keras import keras

        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:
            raise ConfigError(f"--init-from: {path}: not a loadable Keras model ({type(exc).__name__})") from None
        return _source_arrays(model)
    raise ConfigError(f"--init-from: {path}: expected a run folder, a .keras or a .weights.h5 file")


def _h5_arrays(path: Path) -> dict[str, list[np.ndarray]]:
    """Keras 3's ``.weights.h5`` layout: ``layers/<key>/vars/<index>`` datasets, nested models as
    ``layers/<key>/layers/<key>/...``. The file holds no layer names: its keys are the layers'
    class names made unique in order (``conv2d``, ``conv2d_1``), see :func:`_h5_keys`."""
    import h5py

    arrays: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as fh:

            def visit(name, obj):
                parts = name.split("/")
                if isinstance(obj, h5py.Group) and parts[-1] == "vars" and len(obj):
                    arrays["/".join(parts[:-1])] = [np.asarray(obj[k]) for k in sorted(obj.keys(), key=int)]

            fh.visititems(visit)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--init-from: {path}: not a readable .weights.h5 file ({exc})") from None
    if not arrays:
        raise ConfigError(f"--init-from: {path}: holds no layer weights")
    return arrays


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case`` (the keys of its weight files)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _h5_keys(model, prefix: str = "layers") -> dict[int, str]:
    """id(leaf layer) -> its key in a ``.weights.h5`` file written from a model of this architecture."""
    keys, seen = {}, {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        count = seen.get(base, 0)
        seen[base] = count + 1
        key = f"{prefix}/{base}" if count == 0 else f"{prefix}/{base}_{count}"
        if getattr(layer, "layers", None):
            keys.update(_h5_keys(layer, key + "/layers"))
        else:
            keys[id(layer)] = key
    return keys


def load_weights_by_name(model, source) -> LoadReport:
    """Copy into ``model`` the weights of every layer of ``source`` with the same name and shapes.

    A ``.weights.h5`` file stores no layer names, only Keras's structural keys (class name and
    position); its layers are matched by that key and shape instead, which is right for a file
    saved from the same architecture (with any head).
    """
    arrays = _source_arrays(source)
    by_path = isinstance(source, (str, os.PathLike)) and str(source).endswith(".weights.h5")
    keys = _h5_keys(model) if by_path else {}
    report = LoadReport()
    for layer in weighted_layers(model):
        found = arrays.get(keys.get(id(layer)) if by_path else layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if found is not None and [tuple(a.shape) for a in found] == shapes:
            layer.set_weights(found)
            report.matched.append(layer.name)
        else:
            report.unmatched.append(layer.name)
    if not report.matched:
        raise ConfigError(f"--init-from: {source}: no layer matches {model.name} by name and shape")
    return report


def freeze_targets(model, spec: str) -> list:
    """The layers ``spec`` names: ``backbone`` (all but the last weighted layer, the head),
    ``until:LAYER`` (up to and including LAYER) or ``N`` (the first N weighted layers)."""
    layers = weighted_layers(model)
    if spec == "backbone":
        return layers[:-1]
    if spec.startswith("until:"):
        name = spec[len("until:") :]
        names = [layer.name for layer in layers]
        if name not in names:
            raise ConfigError(
                f"--freeze: {model.name} has no layer with weights named {name!r} (first ones: {', '.join(names[:5])})"
            )
        return layers[: names.index(name) + 1]
    count = int(spec)
    if count >= len(layers):
        raise ConfigError(f"--freeze: {count} layers would freeze all {len(layers)} weighted layers of {model.name}")
    return layers[:count]


def freeze(model, spec: str) -> list[str]:
    """Make the layers ``spec`` names untrainable (batch norm there then runs in inference mode);
    returns their names."""
    targets = freeze_targets(model, spec)
    for layer in targets:
        layer.trainable = False
    return [layer.name for layer in targets]
