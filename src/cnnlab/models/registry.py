"""The model registry: builders register under a name; everything else asks the registry.

Builders register with :func:`cnnlab.models.registration.register_model` (re-exported here);
the lookups below import the builder modules on first use.

A builder is one function with the uniform signature
``builder(input_shape=(H, W, C), num_classes=10, *, option=default, ...) -> keras.Model``.
Its keyword-only parameters are its options: :func:`create_model` checks the options a caller
passes against them, so a misspelt option is an error naming it instead of being ignored.
This module imports no framework; builders import Keras themselves.
"""

from __future__ import annotations

import difflib
import fnmatch
import operator
from typing import Any

from cnnlab.errors import ModelError
from cnnlab.models.registration import _REGISTRY, ModelInfo, Shape, register_model

__all__ = ["ModelInfo", "Shape", "create_model", "list_models", "model_info", "register_model"]


def _load_builders() -> None:
    """Import the modules that register builders (they import Keras)."""
    from cnnlab.models import zoo  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (``"resnet*"``), sorted."""
    _load_builders()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; an unknown name is a :class:`ModelError` suggesting close names."""
    _load_builders()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"model: unknown model {name!r}{hint} (`cnnlab models` lists all {len(_REGISTRY)})") from None


def create_model(name: str, input_shape: Shape | None = None, num_classes: int = 10, **options: Any):
    """Build the registered model ``name`` as a Keras model named ``name``; it outputs logits.

    ``input_shape`` is ``(height, width, channels)`` and defaults to the model's own. Every
    check on the caller's input happens here, before anything is built, and fails with a
    one-line :class:`ModelError`.
    """
    info = model_info(name)
    shape = check_input_shape(info, input_shape)
    check_num_classes(num_classes)
    check_options(info, options)
    model = info.builder(input_shape=shape, num_classes=int(num_classes), **options)
    model.name = name
    return model


def check_input_shape(info: ModelInfo, input_shape: Any) -> Shape:
    if input_shape is None:
        return info.input_shape
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ModelError(
            f"input_shape: expected three positive integers (height, width, channels), got {input_shape!r}"
        )
    height, width, _ = shape
    if min(height, width) < info.min_size:
        raise ModelError(
            f"input_shape: {info.name} needs images of at least {info.min_size}x{info.min_size}, got {height}x{width}"
        )
    return shape


def check_num_classes(num_classes: Any) -> None:
    try:
        valid = not isinstance(num_classes, bool) and operator.index(num_classes) > 0
    except TypeError:
        valid = False
    if not valid:
        raise ModelError(f"num_classes: expected a positive integer, got {num_classes!r}")


def check_options(info: ModelInfo, options: dict[str, Any]) -> None:
    known = info.options
    for option in options:
        if option not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise ModelError(f"{info.name}: unknown option {option!r} (its options: {listing})")
        check_option_value(info.name, option, known[option], options[option])


def check_option_value(model: str, option: str, default: Any, value: Any) -> None:
    """A value of the kind the builder's default is: a number for a number, a boolean for a
    boolean, and for a list anything but text (TOML ``[16, 32, 64]``, not ``16,32,64``; some
    builders take one number for every entry). A default of ``None`` or a string takes anything;
    the builder checks those itself."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, (tuple, list)):
        example = "[" + ", ".join(str(v) for v in default) + "]"
        ok, kind = not isinstance(value, str), f"a list like {example}"
    else:
        return
    if not ok:
        raise ModelError(f"{model}: option {option!r} expects {kind}, got {value!r}")
