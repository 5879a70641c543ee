"""Registering a builder: the :func:`register_model` decorator and what it records.

Builder modules import this module, never :mod:`cnnlab.models.registry` or the package: the
registry imports the builder modules (through :mod:`cnnlab.models.zoo`) when it is first asked
for a model, so a builder importing the registry would make an import cycle. This module
imports no framework and no other cnnlab module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
