"""Training: ``train()``, run folders (:class:`Run`), engines per level, recipes, the estimator.

Importing this package is cheap; Keras is loaded when training starts.
"""

from cnnlab.training.config import TrainConfig, list_recipes, load_recipe, resolve_config
from cnnlab.training.estimator import ConvNN
from cnnlab.training.loop import TrainingInterrupted, train
from cnnlab.training.run import Run

__all__ = ["train", "Run", "ConvNN", "TrainConfig", "TrainingInterrupted", "list_recipes", "load_recipe",
           "resolve_config"]
