"""Running a network on raw images: the one path of validation, testing, evaluation and prediction.

The training loop's validation and test figures, ``cnnlab evaluate``, ``cnnlab predict``, the
estimator and the server all come through :func:`logits_of` (uint8 images -> the run's
preprocessing -> a forward function, batch by batch, with the run's test-time augmentation), and
every reported loss is :func:`evaluate_images`'s plain cross-entropy, whatever label smoothing
the training loss used: the figure users compare with other tools.

Every cnnlab model returns logits (docs/architecture.md, "Models"); probabilities are the softmax
of those logits, computed here in float64 so that a few near-equal logits do not round to the
same probability.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Union

import numpy as np
from scipy.special import softmax as _scipy_softmax

if TYPE_CHECKING:  # imported for type names only; loading them pulls in Keras
    from cnnlab.training.run import Run

RunLike = Union["Run", str, os.PathLike]

DEFAULT_BATCH_SIZE = 256


def open_run(run_or_path: RunLike) -> Run:
    """Load the run folder at ``run_or_path``; anything that is not a path is taken to be a loaded run.

    ``Run.load`` raises :class:`~cnnlab.errors.RunError` naming the folder when it is not a run.
    """
    if not isinstance(run_or_path, (str, os.PathLike)):
        return run_or_path
    from cnnlab.training.run import Run

    return Run.load(run_or_path)


def load_model(run, which: str = "final"):
    """The run's Keras model (final, best or latest), without TensorFlow's device-discovery noise.

    The first variable created makes TensorFlow look for a GPU and log a CUDA error on CPU-only
    machines, on the native stderr, which Python's logging settings cannot reach.
    """
    from cnnlab.backend import quiet_native_stderr

    with quiet_native_stderr():
        model = run.model(which)
    check_model(run, model, which)
    return model


def check_model(run, model, which: str = "final") -> None:
    """The model must fit the run (input shape, one output per class) and have finite weights.

    A model file can be a valid Keras file and still be wrong for its run (copied from another
    run, or saved after the weights diverged); using it would fail deep inside the backend or
    give NaN probabilities, so it is refused here with a line naming the file.
    """
    from cnnlab.errors import RunError

    where = run.path / "model.keras" if which == "final" else f"{run.path}: {which} checkpoint"
    try:
        input_shape = tuple(model.input_shape[1:])
        outputs = model.output_shape[-1]
    except (AttributeError, ValueError, TypeError, IndexError):
        raise RunError(f"{where}: not a single-input, single-output model") from None
    if run.input_shape and input_shape != tuple(run.input_shape):
        raise RunError(
            f"{where}: model takes {list(input_shape)}, but the run's config.json says input_shape "
            f"{list(run.input_shape)}"
        )
    if outputs != len(run.class_names):
        raise RunError(
            f"{where}: model has {outputs} outputs, but the run's config.json has {len(run.class_names)} class_names"
        )
    for weight in model.weights:
        values = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise RunError(
                f"{where}: weights {weight.path} are not finite (NaN or infinite); the model diverged "
                f"or the file was damaged; try --checkpoint best"
            )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (SciPy subtracts the row maximum first, so it cannot overflow)."""
    return _scipy_softmax(np.asarray(logits, dtype=np.float64), axis=-1)


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        from cnnlab.errors import ConfigError

        raise ConfigError(f"--batch-size: expected a positive integer, got {batch_size}")


def keras_forward(model) -> Callable[[np.ndarray], np.ndarray]:
    """A Keras model as a forward function: preprocessed float batch -> logits, in inference mode.

    A plain call rather than ``predict``: no progress bar, and no compiled function traced again
    for every model and batch shape (the training loop's validation, which calls one model many
    times, uses the engine's compiled predict step instead).
    """
    from cnnlab._keras import keras

    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


#: Batch sizes :func:`compiled_forward` pads to: at most this many shapes are ever compiled.
FORWARD_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def compiled_forward(model) -> Callable[[np.ndarray], np.ndarray]:
    """A Keras model as a compiled forward function, for a model called many times (the server).

    Keras's own compiled predict step (``model.predict_on_batch``: a ``tf.function``, ``jax.jit`` or
    torch call, by backend), with each batch padded with zeros up to the next size of
    :data:`FORWARD_BUCKETS` and the padding's rows dropped, so at most nine batch shapes are traced
    however the requests arrive. Several times faster than :func:`keras_forward` for small batches
    on TensorFlow and JAX (figures in docs/explain-and-serve.md); the same logits to float rounding.
    """

    def forward(x: np.ndarray) -> np.ndarray:
        n = len(x)
        size = next((b for b in FORWARD_BUCKETS if b >= n), n)
        if size > n:
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        return np.asarray(model.predict_on_batch(x))[:n]

    return forward


def logits_of(
    forward: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    preprocessing,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tta: str = "none",
) -> np.ndarray:
    """Logits of ``forward`` for uint8 ``images`` (N, H, W, C), preprocessed exactly as in training,
    and averaged over the views of :func:`tta_logits` when ``tta`` is not ``"none"``.

    Batches are preprocessed one at a time, so a large test split never exists in memory as
    float32 all at once.
    """
    check_batch_size(batch_size)
    outputs = [
        tta_logits(forward, preprocessing(images[start : start + batch_size]), tta)
        for start in range(0, len(images), batch_size)
    ]
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    logits = np.concatenate(outputs).astype(np.float32, copy=False)
    if not np.isfinite(logits).all():
        from cnnlab.errors import RunError

        bad = int((~np.isfinite(logits)).any(axis=1).sum())
        raise RunError(
            f"the model's outputs are not finite for {bad} of {len(logits)} images (NaN or infinite); "
            f"its weights or the run's preprocessing statistics in config.json are damaged"
        )
    return logits


def predict_logits(
    model,
    images: np.ndarray,
    preprocessing,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tta: str = "none",
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """:func:`logits_of` a Keras model (through ``forward`` if given, else :func:`keras_forward`)."""
    logits = logits_of(forward or keras_forward(model), images, preprocessing, batch_size, tta)
    return logits if len(images) else np.zeros((0, model.output_shape[-1]), dtype=np.float32)


def evaluate_images(
    forward: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    preprocessing,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tta: str = "none",
) -> tuple[float, float]:
    """Mean cross-entropy (no label smoothing) and accuracy of ``forward`` on uint8 ``images``."""
    from cnnlab.evaluation.metrics import cross_entropy

    logits = logits_of(forward, images, preprocessing, batch_size, tta)
    labels = np.asarray(labels, dtype=np.int64)
    return cross_entropy(logits, labels), float(np.mean(np.argmax(logits, axis=-1) == labels))


def tta_logits(forward, x: np.ndarray, mode: str = "none") -> np.ndarray:
    """``forward(x)`` averaged over augmented views of the batch ``x`` (NHWC), the run's ``tta``.

    ``flip`` averages the image and its mirror image; ``flip-translate`` gives that pair half the
    weight and the other half to the mirrored pairs of the image shifted one pixel up-left and
    one down-right (edges reflected): airbench's six views (Jordan 2024).
    """
    if mode == "none":
        return np.asarray(forward(x))

    def mirrored(views):
        return (np.asarray(forward(views)) + np.asarray(forward(np.ascontiguousarray(views[:, :, ::-1])))) / 2

    logits = mirrored(x)
    if mode == "flip-translate":
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        height, width = x.shape[1:3]
        shifted = (
            mirrored(np.ascontiguousarray(padded[:, :height, :width]))
            + mirrored(np.ascontiguousarray(padded[:, 2:, 2:]))
        ) / 2
        logits = (logits + shifted) / 2
    return logits
