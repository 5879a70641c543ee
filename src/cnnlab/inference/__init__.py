"""Using a trained run: prediction on image files and export to Keras, SavedModel and ONNX."""

from cnnlab.inference.exports import FORMATS, Exported, export
from cnnlab.inference.prediction import predict

__all__ = ["FORMATS", "Exported", "export", "predict"]
