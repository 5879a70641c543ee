"""The model zoo: a registry of Keras 3 builders, and parameter / FLOP counting.

::

    from cnnlab.models import create_model, list_models, count_flops
    model = create_model("resnet20", input_shape=(32, 32, 3), num_classes=10)

Every model outputs logits (no softmax layer); train with ``from_logits=True``. The builders
live in :mod:`cnnlab.models.reference` (the tutorials' networks) and one module per modern
family; :mod:`cnnlab.models.zoo` imports them all.
"""

from cnnlab.models.counting import ParamCounts, count_flops, count_params
from cnnlab.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = [
    "ModelInfo",
    "ParamCounts",
    "count_flops",
    "count_params",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
