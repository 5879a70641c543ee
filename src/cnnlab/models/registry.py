"""The model registry: builders register under a name; everything else asks the registry.

A builder is one function with the uniform signature
``builder(input_shape=(H, W, C), num_classes=10, *, option=default, ...) -> keras.Model``.
Its keyword-only parameters are its options: :func:`create_model` checks the options a caller
passes against them, so a misspelt option is an error naming it instead of being ignored.
This module imports no framework; builders import Keras themselves.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

from cnnlab.errors import ModelError

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it.

    ``input_shape`` is the shape the model is meant for (its default); ``min_size`` the smallest
    height and width the architecture accepts. ``reference_params`` is the published parameter
    count (trainable parameters for the modern networks, every parameter for the reference
    networks) at ``reference_input_shape`` and ``reference_num_classes``; ``None`` if there is none.
    ``quick_options`` make a smaller variant of the same code path (narrower, and for the deep
    families fewer blocks: building a training graph costs time per layer) for smoke tests and
    for checking that the model learns on a CPU in seconds; ``quick_size`` is its image size.
    ``batch_norm`` says that a layer computes statistics over the training batch (batch
    normalisation), so a step's result depends on the batch as a whole and cnnlab never splits the
    batch across cores (``--split-batch``); it defaults to True, the safe answer for a new model.
    ``tags`` mark families: ``"keras-applications"`` for the ImageNet backbones of
    :mod:`cnnlab.models.applications` (large: the zoo's quick tests leave them to their own tests).
    """

    name: str
    builder: Callable[..., Any]
    description: str
    paper: str
    input_shape: Shape
    min_size: int
    reference_params: int | None = None
    reference_input_shape: Shape | None = None
    reference_num_classes: int = 10
    reference_note: str = ""
    reference_counts_all: bool = False
    quick_options: dict = field(default_factory=dict)
    quick_size: int | None = None
    batch_norm: bool = True
    tags: tuple[str, ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        """The builder's options and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    @property
    def paper_title(self) -> str:
        return self.paper


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    description: str,
    paper: str,
    input_shape: Shape,
    min_size: int,
    reference_params: int | None = None,
    reference_input_shape: Shape | None = None,
    reference_num_classes: int = 10,
    reference_note: str = "",
    reference_counts_all: bool = False,
    quick_options: dict | None = None,
    quick_size: int | None = None,
    batch_norm: bool = True,
    tags: tuple[str, ...] = (),
    **fixed_options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder`` under ``name``.

    ``fixed_options`` become the builder's defaults for this name, so one parametrised builder
    can be registered several times (``resnet20`` ... ``resnet110`` are one function with
    ``depth``). They stay options: ``quick_options`` use them to make small variants.
    """

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        bound = _bind(builder, name, fixed_options) if fixed_options else builder
        _REGISTRY[name] = ModelInfo(
            name=name,
            builder=bound,
            description=description,
            paper=paper,
            input_shape=tuple(input_shape),
            min_size=min_size,
            reference_params=reference_params,
            reference_input_shape=tuple(reference_input_shape or input_shape),
            reference_num_classes=reference_num_classes,
            reference_note=reference_note,
            reference_counts_all=reference_counts_all,
            quick_options=dict(quick_options or {}),
            quick_size=quick_size,
            batch_norm=batch_norm,
            tags=tuple(tags),
        )
        return builder

    return decorate


def _bind(builder: Callable[..., Any], name: str, fixed: dict[str, Any]) -> Callable[..., Any]:
    """``builder`` with new defaults for some options; its signature shows them."""
    signature = inspect.signature(builder)
    unknown = set(fixed) - set(signature.parameters)
    if unknown:
        raise ValueError(f"{name}: {builder.__name__} has no option {sorted(unknown)}")

    def bound(*args: Any, **kwargs: Any) -> Any:
        return builder(*args, **{**fixed, **kwargs})

    bound.__signature__ = signature.replace(
        parameters=[p.replace(default=fixed[p.name]) if p.name in fixed else p for p in signature.parameters.values()]
    )
    bound.__name__ = name
    bound.__doc__ = builder.__doc__
    bound.__wrapped__ = builder
    return bound


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
        raise ModelError(
            f"model: unknown model {name!r}{hint} (`cnnlab models` lists all {len(_REGISTRY)})"
        ) from None


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
            f"input_shape: {info.name} needs images of at least {info.min_size}x{info.min_size}, "
            f"got {height}x{width}"
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
