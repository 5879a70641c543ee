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
    return read_image(preprocessing, path)[0]


def read_image(preprocessing, source: Path | bytes, name: str | None = None) -> tuple[np.ndarray, dict]:
    """Decode a file or in-memory bytes as :meth:`Preprocessing.load_images` does (same Pillow calls, same
    conversion and resize), and also say what the image was before that: ``{"size": (H, W), "channels": C}``.

    A bad image is a DataError naming ``name`` (default: the path, or ``<bytes>``).
    """
    from cnnlab.data.images import image_channels, open_image, to_array

    name = name or (os.fspath(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        image = open_image(source, name)
        info = {"size": (image.size[1], image.size[0]), "channels": image_channels(image)}
        size, channels = preprocessing.image_size, preprocessing.channels or info["channels"]
        array = to_array(image, size, channels)
        if info["channels"] == 3 and channels == 1 and _gray_content(image):
            info["channels"] = 1  # stored as RGB(A) but gray (a browser canvas, a scanned page)
        return array, info
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for unreadable or truncated files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{name}: not a readable image ({reason})") from None


def _gray_content(image) -> bool:
    """True when every pixel of a colour image has equal red, green and blue."""
    from cnnlab.data.images import convert_mode

    rgb = np.asarray(convert_mode(image, 3), dtype=np.int16)
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def predict(
    run_or_path: RunLike,
    files: Iterable[str | os.PathLike] | str | os.PathLike,
    top_k: int = 5,
    *,
    which: str = "final",
    batch_size: int = DEFAULT_BATCH_SIZE,
    invert: bool = False,
    check_inputs: bool = True,
) -> list[dict]:
    """Classify image files (or directories of them) with a run's model.

    Returns one dict per image, in input order (directories expanded, sorted)::

        {"file": "digit.png", "top": [{"class": "7", "index": 7, "probability": 0.98}, ...]}

    ``top`` holds the ``top_k`` most probable classes (at most the number of classes), most
    probable first; probabilities are the softmax of the model's logits (averaged over the run's
    test-time views when it was trained with ``tta``).

    With ``check_inputs`` each image's simple statistics are compared with the training images'
    (:mod:`cnnlab.inference.input_check`); an image unlike them gets ``"warnings": [...]`` saying how
    and what to do (for digits drawn dark on light: ``invert=True``).
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    check_top_k(top_k)
    paths = expand_image_paths(files)
    run = open_run(run_or_path)
    decoded = [read_image(run.preprocessing, path) for path in paths]
    images = np.stack([image for image, _ in decoded])
    warnings = None
    if check_inputs:
        from cnnlab.inference.input_check import input_warnings

        warnings = input_warnings(run, 255 - images if invert else images, [info for _, info in decoded])
    return predict_images(
        run,
        load_model(run, which),
        images,
        [os.fspath(p) for p in paths],
        top_k,
        batch_size=batch_size,
        invert=invert,
        warnings=warnings,
    )


def check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise ConfigError(f"--top-k: expected a positive integer, got {top_k}")


def predict_images(
    run,
    model,
    images: np.ndarray,
    names: list[str],
    top_k: int = 5,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    invert: bool = False,
    warnings: list[list[str]] | None = None,
    forward=None,
) -> list[dict]:
    """The second half of :func:`predict`, on decoded uint8 images (N, H, W, C) already in memory:
    the run's preprocessing and test-time views, softmax, top-k. The server calls this too, so a file
    gets the same probabilities from ``cnnlab predict`` and from ``cnnlab serve``.

    ``invert`` replaces each image by its negative (255 - x) first; ``warnings`` (one list per image,
    from :func:`cnnlab.inference.input_check.input_warnings`) are added to the results that have any.
    ``forward`` replaces the model's plain call (the server passes
    :func:`cnnlab.inference.forward.compiled_forward`).
    """
    check_top_k(top_k)
    images = np.asarray(images, np.uint8)
    if invert:
        images = 255 - images
    logits = predict_logits(model, images, run.preprocessing, batch_size, tta=run.train_config.tta, forward=forward)
    probabilities = softmax(logits)
    results = [_top_classes(name, row, run.class_names, top_k) for name, row in zip(names, probabilities)]
    for result, notes in zip(results, warnings or []):
        if notes:
            result["warnings"] = list(notes)
    return results


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
