"""Fine-tuning: load weights from another model by layer name and shape, replace the head, freeze.

::

    from cnnlab.models import create_model
    from cnnlab.models.transfer import freeze, load_weights_by_name

    model = create_model("resnet20", (32, 32, 3), num_classes=5)      # the new task's classes
    report = load_weights_by_name(model, "runs/cifar5")                # a run, .keras or .weights.h5
    print(report.summary())   # "loaded 64 of 65 layers ...; not loaded: logits (shape ...)"
    freeze(model, "backbone")                                          # then compile and train

A layer is loaded when the source has a layer of the same name whose weights have the same
shapes; everything else keeps its fresh initialisation and is listed, with the reason. A model
built for another number of classes therefore gets every layer but its classifier, which is
how the head is replaced when the class count differs (:func:`replace_head` does the same for a
model that is already built). When the source is a run folder, its classes are known: given the
new task's ``class_names``, a classifier trained on other classes also starts afresh, even with
the same count (its rows would map, say, "airplane" onto "dog").

:func:`freeze` marks layers not trainable. In Keras 3 a ``BatchNormalization`` layer that is not
trainable also runs in inference mode (it normalises with its moving statistics and does not
update them, even in ``fit``), which is what a frozen backbone needs: updating the statistics of
layers whose weights no longer change is the classic fine-tuning pitfall (Keras's transfer
learning guide, Chollet, "Transfer learning & fine-tuning"). Compile the model after freezing
(or after unfreezing): Keras collects the trainable weights when it compiles.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import ModelError


@dataclass
class LoadReport:
    """What :func:`load_weights_by_name` did: layers loaded, layers not loaded (with why), source
    layers that matched nothing."""

    source: str
    matched: list[str] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the console and the log."""
        total = len(self.matched) + len(self.unmatched)
        line = f"loaded {len(self.matched)} of {total} layers with weights from {self.source}"
        if self.unmatched:
            shown = "; ".join(f"{name} ({why})" for name, why in self.unmatched[:4])
            more = f"; and {len(self.unmatched) - 4} more" if len(self.unmatched) > 4 else ""
            line += f"; not loaded: {shown}{more}"
        if self.unused:
            line += f"; {len(self.unused)} source layer(s) unused"
        return line

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "matched": self.matched,
            "unmatched": [list(u) for u in self.unmatched],
            "unused": self.unused,
        }


def weighted_layers(model) -> list:
    """Leaf layers with weights, nested models' layers in place (depth first, in layer order)."""
    return [layer for layer in flat_layers(model) if layer.weights]


def flat_layers(model) -> list:
    """Every leaf layer of ``model``, a nested model's layers where the nested model sits."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and _is_model(layer):
            out.extend(flat_layers(layer))
        else:
            out.append(layer)
    return out


def _is_model(layer) -> bool:
    from cnnlab._keras import keras

    return isinstance(layer, keras.Model)


def read_layer_weights(source) -> dict[str, list[np.ndarray]]:
    """{layer name: its weight arrays} from a run folder (its ``model.keras``), a ``.keras`` model,
    a Keras 3 ``.weights.h5`` file, a Keras 2 (legacy) ``.h5`` weights file, or a Keras model."""
    if hasattr(source, "layers") and hasattr(source, "get_weights"):  # a model in memory
        return {layer.name: layer.get_weights() for layer in flat_layers(source) if layer.weights}
    path = Path(source)
    if path.is_dir():
        model_file = path / "model.keras"
        if not model_file.is_file():
            raise ModelError(f"{path}: no model.keras in this run folder (has the run finished?)")
        path = model_file
    if not path.is_file():
        raise ModelError(f"{path}: no such run folder, .keras or .weights.h5 file")
    name = path.name.lower()
    if name.endswith(".keras"):
        return _from_keras_file(path)
    if name.endswith(".h5") or name.endswith(".hdf5"):
        return _from_h5(path)
    raise ModelError(f"{path}: expected a run folder, a .keras model or a .weights.h5 / .h5 weights file")


def _from_keras_file(path: Path) -> dict[str, list[np.ndarray]]:
    from cnnlab._keras import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged or foreign archive
        raise ModelError(
            f"{path}: cannot read the model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in weighted_layers(model)}


def _from_h5(path: Path) -> dict[str, list[np.ndarray]]:
    import h5py

    out: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            if "layer_names" in root.attrs:  # Keras 2 (legacy) layout: one group per layer, weight_names
                for layer in root.attrs["layer_names"]:
                    layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                    group = root[layer]
                    names = [
                        n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])
                    ]
                    if names:
                        out[layer] = [np.asarray(group[n]) for n in names]
                return out

            def visit(name: str, item) -> None:  # Keras 3: layers/<key>[/layers/<key>...]/vars/<0, 1, ...>
                parts = name.split("/")
                if not isinstance(item, h5py.Group) or parts[-1] != "vars" or len(parts) < 3 or parts[-3] != "layers":
                    return
                if parts[0] == "optimizer":
                    return
                arrays = [np.asarray(item[k]) for k in sorted(item.keys(), key=int)]
                if arrays:
                    out[PATH_PREFIX + "/".join(parts[:-1])] = arrays

            root.visititems(visit)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable Keras weights file ({type(exc).__name__}: {exc})") from None
    if not out:
        raise ModelError(f"{path}: no layer weights found (expected a Keras .weights.h5 or .h5 weights file)")
    return out


PATH_PREFIX = "path:"  # keys of weights read from a Keras 3 .weights.h5 file


def keras_weight_paths(model, prefix: str = "layers") -> dict[int, str]:
    """{id(layer): its group in a Keras 3 ``.weights.h5`` file} for every leaf layer of ``model``.

    Keras 3 does not store layer names in ``.weights.h5`` files but the snake-case class name
    numbered in layer order (``layers/batch_normalization_3``), nested models inside their own
    group; this rebuilds those names the same way.
    """
    from keras.src.utils.naming import to_snake_case

    paths, used = {}, {}
    for layer in model.layers:
        key = to_snake_case(type(layer).__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        if _is_model(layer) and layer.layers:
            paths.update(keras_weight_paths(layer, f"{prefix}/{key}/layers"))
        else:
            paths[id(layer)] = f"{prefix}/{key}"
    return paths


def source_class_names(source) -> list[str] | None:
    """The class names a run folder was trained on (from its ``config.json``); None for a model
    file, a weights file or a model in memory, which do not record them."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    config = Path(source) / "config.json"
    try:
        names = json.loads(config.read_text()).get("class_names") if config.is_file() else None
    except (OSError, ValueError):
        return None
    return [str(name) for name in names] if isinstance(names, list) else None


def load_weights_by_name(model, source: str | os.PathLike, class_names=None) -> LoadReport:
    """Set each layer of ``model`` that has a same-named layer with same-shaped weights in ``source``.

    ``source`` is a run folder, a ``.keras`` model or a ``.weights.h5`` / ``.h5`` weights file.
    A Keras 3 ``.weights.h5`` file has no layer names (see :func:`keras_weight_paths`), so its
    layers match by their place among the layers of their class, which is the same thing for
    two models from the same builder. Returns a :class:`LoadReport`; a partial load is normal
    (the head of a model for another class count is not loaded). With ``class_names`` (the new
    task's), the head is not loaded either when ``source`` is a run trained on other classes
    (:func:`source_class_names`). No layer in common is a ModelError.
    """
    weights = read_layer_weights(source)
    by_path = any(key.startswith(PATH_PREFIX) for key in weights)
    paths = keras_weight_paths(model) if by_path else {}
    report = LoadReport(str(source))
    source_classes = source_class_names(source) if class_names is not None else None
    fresh_head = None
    if source_classes is not None and source_classes != [str(name) for name in class_names]:
        fresh_head = classifier_layer(model).name
    used = set()
    for layer in weighted_layers(model):
        want = [tuple(w.shape) for w in layer.weights]
        key = PATH_PREFIX + paths.get(id(layer), "") if by_path else layer.name
        arrays = weights.get(key)
        if arrays is None:
            report.unmatched.append((layer.name, "not in source"))
            continue
        if layer.name == fresh_head:
            shown = ", ".join(source_classes[:3]) + (", ..." if len(source_classes) > 3 else "")
            report.unmatched.append((layer.name, f"the source was trained on other classes ({shown})"))
            continue
        got = [tuple(a.shape) for a in arrays]
        if got != want:
            report.unmatched.append((layer.name, f"shape {_shapes(got)} in source, {_shapes(want)} here"))
            continue
        for variable, array in zip(layer.weights, arrays):
            variable.assign(array.astype(variable.dtype))
        report.matched.append(layer.name)
        used.add(key)
    report.unused = [name.removeprefix(PATH_PREFIX) for name in weights if name not in used]
    if not report.matched:
        first = next(iter(weights), "?").removeprefix(PATH_PREFIX)
        close = difflib.get_close_matches(first, [layer.name for layer in weighted_layers(model)], 1)
        hint = f" (source layers are named like {first!r}{', here ' + repr(close[0]) if close else ''})"
        raise ModelError(f"{source}: no layer of {model.name} matches a source layer by name and shape{hint}")
    return report


def _shapes(shapes: list[tuple]) -> str:
    return "+".join("x".join(map(str, s)) for s in shapes)


def classifier_layer(model):
    """The classifier (head) layer: the last top-level layer with weights."""
    for layer in reversed(model.layers):
        if layer.weights and not _is_model(layer):
            return layer
    raise ModelError(f"{model.name}: no classifier layer (no top-level layer with weights after the backbone)")


def replace_head(model, num_classes: int):
    """A model sharing ``model``'s layers with a freshly initialised classifier for ``num_classes``.

    The classifier is the last top-level layer with weights (a Dense or 1x1 Conv2D), which must
    produce the model's output. A model that already has ``num_classes`` outputs is returned as is.
    """
    from cnnlab._keras import keras

    head = classifier_layer(model)
    if head.output is not model.outputs[0]:
        raise ModelError(f"{model.name}: its classifier {head.name!r} is not the output layer; cannot replace it")
    units_key = "units" if "units" in head.get_config() else "filters"
    if head.get_config()[units_key] == num_classes:
        return model
    config = {**head.get_config(), units_key: int(num_classes)}
    new_head = type(head).from_config(config)
    return keras.Model(model.inputs, new_head(head.input), name=model.name)


@dataclass
class FreezeReport:
    """What :func:`freeze` froze: layer names, parameter counts, batch-norm layers in inference mode."""

    spec: str
    frozen: list[str]
    frozen_params: int
    trainable_params: int
    batch_norm: int

    def summary(self) -> str:
        return (
            f"freeze {self.spec}: {len(self.frozen)} layers frozen ({self.frozen_params:,} parameters; "
            f"{self.batch_norm} batch-norm layers in inference mode), {self.trainable_params:,} trainable"
        )


def backbone_layers(model) -> list:
    """The layers ``freeze(model, "backbone")`` freezes: the nested model named ``backbone`` if there
    is one (Keras Applications), else every leaf layer before the classifier."""
    for layer in model.layers:
        if layer.name == "backbone" and _is_model(layer):
            return flat_layers(layer)
    head = classifier_layer(model)
    leaves = flat_layers(model)
    return leaves[: leaves.index(head)]


def freeze(model, spec: str | int) -> FreezeReport:
    """Freeze part of ``model`` (``trainable = False``; batch norm there runs in inference mode).

    ``spec``: ``"backbone"`` (everything but the classifier: :func:`backbone_layers`),
    ``"until:LAYER"`` (every layer from the input up to and including LAYER, in layer order,
    nested models' layers included), ``N`` or ``"N"`` (the first N layers with weights), ``"none"``
    (make every layer trainable again). Layers outside the spec are made trainable.
    """
    from cnnlab._keras import keras

    chosen = freeze_targets(model, spec)
    text = str(spec).strip()
    frozen = {id(layer) for layer in chosen}
    _set_trainable(model, frozen)
    norms = sum(1 for layer in chosen if isinstance(layer, keras.layers.BatchNormalization))
    frozen_params = sum(int(np.prod(w.shape)) for layer in chosen for w in layer.weights)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return FreezeReport(text or "none", [layer.name for layer in chosen], frozen_params, trainable, norms)


def freeze_targets(model, spec: str | int) -> list:
    """The leaf layers ``spec`` names (see :func:`freeze`), without changing anything."""
    leaves = flat_layers(model)
    text = str(spec).strip()
    if text in ("none", "", "0"):
        chosen = []
    elif text == "backbone":
        chosen = backbone_layers(model)
    elif text.startswith("until:"):
        target = text.split(":", 1)[1]
        names = [layer.name for layer in leaves]
        if target not in names:
            close = difflib.get_close_matches(target, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ModelError(f"freeze: {model.name} has no layer {target!r}{hint}")
        chosen = leaves[: names.index(target) + 1]
    elif text.isdigit():  # layers with weights: what a user counts as "the first N layers"
        count, weighted = int(text), [layer for layer in leaves if layer.weights]
        if count >= len(weighted):
            raise ModelError(
                f"freeze: {model.name} has {len(weighted)} layers with weights, cannot freeze the first "
                f"{count} and still train"
            )
        chosen = weighted[:count]
    else:
        raise ModelError(f"freeze: expected backbone, until:LAYER, a number of layers or none; got {spec!r}")
    return chosen


# Layers that are never trained: the Keras Applications' fixed input preprocessing.
FIXED_LAYERS = ("imagenet_input",)


def _set_trainable(model, frozen: set) -> None:
    """Leaf layers in ``frozen`` not trainable, all others trainable (but FIXED_LAYERS);
    containers follow their layers."""
    for layer in model.layers:
        if _is_model(layer) and layer.layers:
            layer.trainable = True  # a container must be trainable for any of its layers to be
            _set_trainable(layer, frozen)
        else:
            layer.trainable = id(layer) not in frozen and layer.name not in FIXED_LAYERS


def unfreeze(model) -> None:
    """Every layer trainable again (recompile before training)."""
    _set_trainable(model, set())
