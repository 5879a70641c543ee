"""``predict(run, files)``: class probabilities for image files, preprocessed exactly as in training.

The run's :class:`~cnnlab.data.preprocessing.Preprocessing` (stored in its config) does both
halves: ``load_images`` reads any Pillow format, mode and bit depth and brings it to the
training image size and colour mode; calling it pads and normalises with the training
statistics. Nothing here re-implements either, so prediction cannot drift from training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from cnnlab.errors import ConfigError, DataError
from cnnlab.inference.forward import DEFAULT_BATCH_SIZE, RunLike, load_model, open_run, predict_logits, softmax

# Suffixes taken from a directory; files named explicitly are tried whatever their suffix.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})


def expand_image_paths(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, directories replaced by their image files (sorted by name, not recursive)."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: directory holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths.extend(found)
        elif os.path.lexists(path):  # a FIFO or device is refused by name when it is opened
            paths.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    if not paths:
        raise DataError("no image files given")
    return paths


def load_image(preprocessing, path: Path) -> np.ndarray:
    """One image as uint8 (H, W, C) at the training size and colour mode; a bad file is a DataError naming it."""
    try:
        return preprocessing.load_images([path])[0]
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for unreadable or truncated files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: not a readable image ({reason})") from None


def predict(
    run_or_path: RunLike,
    files: Iterable[str | os.PathLike] | str | os.PathLike,
    top_k: int = 5,
    *,
    which: str = "final",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[dict]:
    """Classify image files (or directories of them) with a run's model.

    Returns one dict per image, in input order (directories expanded, sorted)::

        {"file": "digit.png", "top": [{"class": "7", "index": 7, "probability": 0.98}, ...]}

    ``top`` holds the ``top_k`` most probable classes (at most the number of classes), most
    probable first; probabilities are the softmax of the model's logits (averaged over the run's
    test-time views when it was trained with ``tta``).
    """
    if top_k < 1:
        raise ConfigError(f"--top-k: expected a positive integer, got {top_k}")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = expand_image_paths(files)
    run = open_run(run_or_path)
    images = np.stack([load_image(run.preprocessing, path) for path in paths])
    logits = predict_logits(load_model(run, which), images, run.preprocessing, batch_size, tta=run.train_config.tta)
    probabilities = softmax(logits)
    return [_top_classes(os.fspath(path), row, run.class_names, top_k) for path, row in zip(paths, probabilities)]


def _top_classes(file: str, probabilities: np.ndarray, class_names: list[str], top_k: int) -> dict:
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return {
        "file": file,
        "top": [{"class": class_names[i], "index": int(i), "probability": float(probabilities[i])} for i in order],
    }


def format_predictions(predictions: list[dict]) -> str:
    """One line per file: the file, then ``class probability`` pairs, most probable first."""
    width = max(len(p["file"]) for p in predictions)
    lines = []
    for prediction in predictions:
        tops = "   ".join(f"{t['class']} {t['probability']:.4f}" for t in prediction["top"])
        lines.append(f"{prediction['file']:<{width}}  {tops}")
    return "\n".join(lines)
