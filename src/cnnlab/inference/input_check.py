"""Does an image look like the training images? Simple statistics, compared, with a fix when there is one.

A black-on-white photo of a digit given to a model trained on MNIST (white strokes on black) is
confidently misread, and nothing says why. Each image is compared with the training set on:

- **channels**: a colour photo for a grayscale model (it is converted) or the reverse;
- **size**: the image is much smaller than the training size, or its shape is stretched by the resize;
- **polarity**: the training images' background (their border) is dark and this image's is light,
  or the reverse; the fix is to invert the image (``cnnlab predict --invert``, the page's Invert box);
- **mean intensity**: far outside the range of the training images' mean intensities.

The training statistics are computed from up to :data:`SAMPLE` training images of the run's dataset
the first time they are needed and kept in the run folder (``input-statistics.json``), so no
training code changes and old runs get the check too. When the dataset cannot be loaded (a run
trained on in-memory arrays, data no longer on disk), only the size and channel checks are made.
"""

from __future__ import annotations

import json
import logging

import numpy as np

STATISTICS_FILE = "input-statistics.json"
SAMPLE = 2000
BORDER = 2  # pixels of the frame whose mean is an image's background level
MEAN_MARGIN = 32.0  # grey levels beyond the training images' 0.5-99.5 percentile range of means
_log = logging.getLogger(__name__)


def image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image (uint8 (N, H, W, C)): mean intensity and mean of the ``BORDER``-pixel frame, 0..255."""
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    height, width = x.shape[1:3]
    b = max(1, min(BORDER, height // 4, width // 4))
    frame = np.ones((height, width), bool)
    frame[b : height - b, b : width - b] = False
    gray = x.mean(axis=-1)
    return {
        "mean": gray.mean(axis=(1, 2)),
        "border": gray[:, frame].mean(axis=1),
        "center": gray[:, ~frame].mean(axis=1),
    }


def training_statistics(images: np.ndarray) -> dict:
    """What the check compares against, from uint8 training images."""
    stats = image_statistics(images)
    contrast = stats["center"] - stats["border"]
    return {
        "images": int(len(images)),
        "mean_low": float(np.percentile(stats["mean"], 0.5)),
        "mean_high": float(np.percentile(stats["mean"], 99.5)),
        "border_median": float(np.median(stats["border"])),
        # the training images' polarity is meaningful only when nearly all agree (digits, letters, sketches)
        "dark_background_fraction": float(np.mean(contrast > 0)),
    }


def run_statistics(run) -> dict | None:
    """The run's training statistics: from ``RUN/input-statistics.json``, else computed and stored there."""
    path = run.path / STATISTICS_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    try:
        train = run.dataset().train
    except Exception as exc:  # no data on disk, arrays run: the check does what it can without
        _log.info("input check: training images unavailable (%s); checking size and channels only", exc)
        return None
    index = np.sort(np.random.default_rng(0).permutation(len(train))[:SAMPLE])
    stats = training_statistics(train.x[index])
    try:
        from cnnlab.io import atomic_write_json

        atomic_write_json(path, stats)
    except OSError:  # a read-only run folder: keep them in memory only
        pass
    return stats


class InputChecker:
    """Compares images with one run's training images; ``warnings(images, infos)`` per image."""

    def __init__(self, run, stats: dict | None = None, *, load: bool = True):
        self.image_size = tuple(run.preprocessing.image_size or ())
        self.channels = run.preprocessing.channels
        self.stats = stats if stats is not None or not load else run_statistics(run)

    @property
    def polarity(self) -> str | None:
        """ "dark" or "light" background when at least 90% of the training images agree, else None."""
        if not self.stats:
            return None
        fraction = self.stats["dark_background_fraction"]
        return "dark" if fraction >= 0.9 else "light" if fraction <= 0.1 else None

    def warnings(self, images: np.ndarray, infos: list[dict] | None = None) -> list[list[str]]:
        """``images``: uint8 (N, H, W, C) at the training size and channels; ``infos``: each file's
        original ``{"size": (H, W), "channels": C}`` (see ``read_image``)."""
        stats = image_statistics(images)
        result = []
        for i in range(len(images)):
            info = (infos or [{}] * len(images))[i] or {}
            result.append(self._check_one(info, {k: float(v[i]) for k, v in stats.items()}))
        return result

    def _check_one(self, info: dict, s: dict) -> list[str]:
        notes = []
        channels = info.get("channels")
        if channels is not None and self.channels is not None and channels != self.channels:
            kind = {1: "grayscale", 3: "colour"}
            notes.append(
                f"a {kind.get(channels, channels)} image for a model trained on {kind.get(self.channels)} "
                f"images; it was converted"
            )
        size = info.get("size")
        if size and self.image_size:
            (h, w), (th, tw) = size, self.image_size
            stretch = (h / w) / (th / tw)
            if max(stretch, 1 / stretch) > 1.5:
                notes.append(
                    f"{w}x{h} pixels resized to the training size {tw}x{th}: its shape is stretched; "
                    f"crop it to the training aspect ratio first"
                )
            elif h < th / 2 or w < tw / 2:
                notes.append(f"{w}x{h} pixels, much smaller than the training size {tw}x{th}; it was enlarged")
        polarity = self.polarity
        if polarity is not None:
            light_background = s["border"] > 127.5 and s["border"] > s["center"]
            dark_background = s["border"] < 127.5 and s["border"] < s["center"]
            if polarity == "dark" and light_background:
                notes.append(
                    "dark strokes on a light background, but the training images are light on dark: "
                    "invert it (cnnlab predict --invert, or the page's Invert box)"
                )
            elif polarity == "light" and dark_background:
                notes.append(
                    "light strokes on a dark background, but the training images are dark on light: "
                    "invert it (cnnlab predict --invert, or the page's Invert box)"
                )
        if self.stats and not notes:
            low, high = self.stats["mean_low"] - MEAN_MARGIN, self.stats["mean_high"] + MEAN_MARGIN
            if not low <= s["mean"] <= high:
                notes.append(
                    f"mean intensity {s['mean']:.0f} is outside the training images' range "
                    f"{self.stats['mean_low']:.0f}-{self.stats['mean_high']:.0f} (of 255)"
                )
        return notes


def input_warnings(run, images: np.ndarray, infos: list[dict] | None = None) -> list[list[str]]:
    """One list of warnings per image (empty when it looks like the training images)."""
    return InputChecker(run).warnings(images, infos)
