"""Names shared across cnnlab: levels, backends, precisions, normalisation and test-time augmentation modes.

One definition each; the option schema (:mod:`cnnlab.training.config`), the data pipeline, the runtime
resolution and the CLI read them from here. Standard library only: imported before Keras.
"""

from __future__ import annotations

LEVELS = ("keras", "scratch", "lowlevel")  # the ways a network is written: Keras layers, NumPy, raw ops
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
NORMALIZE_MODES = ("unit", "standardize", "center", "none")
TTA_MODES = ("none", "flip", "flip-translate")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "one-cycle")
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
AUGMENTATION_KEYS = ("shift", "zoom", "rotation", "flip", "crop_padding", "fill")
RESIZE_POLICIES = ("squash", "center-crop", "pad")  # how images are brought to --image-size
STREAM_CHOICES = ("auto", "on", "off")  # --stream: decode a folder's images per batch instead of all up front
