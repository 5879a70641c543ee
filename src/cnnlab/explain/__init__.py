"""Explanations of a run's predictions: Grad-CAM, Grad-CAM++, saliency, SmoothGrad, Integrated
Gradients and occlusion, on every Keras backend (:mod:`cnnlab.explain.gradients`).

Importing this package is cheap; Keras is loaded when a method runs.
"""

from cnnlab.explain.api import BASELINES, METHODS, Explainer, Explanation, check_methods, explain

__all__ = ["BASELINES", "METHODS", "Explainer", "Explanation", "check_methods", "explain"]
