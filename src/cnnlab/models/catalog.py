"""Facts about registered models (parameters, FLOPs), measured by building them, and cached.

Building every model (Inception-v4 alone has 42.7M parameters and ~450 layers) takes a minute,
so the measured facts are cached in the cache folder, keyed by a hash of the model sources
and the Keras version: any change to a builder invalidates the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from cnnlab.io import atomic_write_json
from cnnlab.models.registry import list_models, model_info
from cnnlab.paths import cache_dir

MODELS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelFacts:
    """A model measured at its reference configuration (input shape and class count)."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    total_params: int
    trainable_params: int
    flops: int
    reference_params: int | None
    reference_counts_all: bool = False

    @property
    def compared_params(self) -> int:
        """The count comparable with the reference: every parameter, or the trainable ones."""
        return self.total_params if self.reference_counts_all else self.trainable_params

    @property
    def difference(self) -> float | None:
        """Relative difference of cnnlab's count from the reference, or None."""
        if not self.reference_params:
            return None
        return (self.compared_params - self.reference_params) / self.reference_params


def measure(name: str) -> ModelFacts:
    """Build ``name`` at its reference configuration and count its parameters and FLOPs."""
    from cnnlab.backend import quiet_native_stderr
    from cnnlab.models.counting import count_flops, count_params
    from cnnlab.models.registry import create_model

    info = model_info(name)
    with quiet_native_stderr():  # TensorFlow's first op logs a CUDA probe failure on CPU-only machines
        model = create_model(name, info.reference_input_shape, info.reference_num_classes)
    params = count_params(model)
    return ModelFacts(
        name,
        tuple(info.reference_input_shape),
        info.reference_num_classes,
        params.total,
        params.trainable,
        count_flops(model),
        info.reference_params,
        info.reference_counts_all,
    )


def _source_key() -> str:
    from cnnlab._keras import keras

    digest = hashlib.sha256(keras.__version__.encode())
    for path in sorted(MODELS_DIR.glob("*.py")):
        if path.name == "docs.py":  # the page's wording does not change what is measured
            continue
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_facts(pattern: str = "*", *, use_cache: bool = True) -> list[ModelFacts]:
    """Facts for every model matching ``pattern``; measured once per version of the sources."""
    cache_file = cache_dir() / "models" / f"facts-{_source_key()}.json"
    cached = {}
    if use_cache and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = {}
    facts = []
    for name in list_models(pattern):
        if name in cached:
            row = cached[name]
            facts.append(ModelFacts(**{**row, "input_shape": tuple(row["input_shape"])}))
        else:
            facts.append(measure(name))
            cached[name] = asdict(facts[-1])
            if use_cache:
                try:
                    atomic_write_json(cache_file, cached)
                except OSError:  # a read-only cache folder only costs speed
                    pass
    return facts
