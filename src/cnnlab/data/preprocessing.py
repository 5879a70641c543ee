"""From uint8 images to the float32 network input, stored with the run so prediction repeats it.

Normalisations:
- ``unit``: x / 255 (Richard Kuo's and Jake Tae's tutorials).
- ``standardize``: per channel, (x/255 - mean_c) / std_c with statistics of the training split
  (the usual CIFAR practice).
- ``center``: Hsi-Pin Ma's ``(X - mean_vals) / std_val`` with ``mean_vals = np.mean(X_train, axis=0)``
  (a per-pixel mean image) and ``std_val = np.std(X_train)`` (one global value), on 0..255.
- ``none``: x as float32.

``pad`` adds black (0) pixels on every side *before* normalising, as LeNet-5 is fed 28x28 MNIST
digits centred in a 32x32 field (LeCun et al. 1998, "Gradient-based learning applied to
document recognition", sec. II.A).

``resize`` is the policy that brings an image of another shape to ``image_size``: ``squash``
(ignore the aspect ratio), ``center-crop`` (cover, then cut the centre) or ``pad`` (fit inside,
then black borders); see :mod:`cnnlab.data.images`. :meth:`Preprocessing.load_images` (files) and
:meth:`Preprocessing.resize_images` (uint8 arrays) apply it with the same Pillow code, and it is
stored with the rest in :meth:`Preprocessing.to_dict`, so prediction resizes as training did.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from cnnlab.constants import NORMALIZE_MODES
from cnnlab.errors import DataError

_EPS = 1e-7  # keeps a constant channel from dividing by zero
_FIT_CHUNK = 4096  # images per pass when fitting statistics


class Preprocessing:
    """Pad and normalise uint8 NHWC batches; fit statistics on the training split only."""

    def __init__(
        self,
        image_size: Sequence[int] | None = None,
        channels: int | None = None,
        pad: int = 0,
        normalize: str = "unit",
        mean: Any = None,
        std: Any = None,
        resize: str = "squash",
    ):
        from cnnlab.data.images import check_resize

        if normalize not in NORMALIZE_MODES:
            raise DataError(f"normalize: expected one of {', '.join(NORMALIZE_MODES)}, got {normalize!r}")
        if int(pad) < 0:
            raise DataError(f"pad: expected a non-negative number of pixels, got {pad}")
        if channels is not None and int(channels) not in (1, 3):
            raise DataError(f"channels: expected 1 or 3, got {channels}")
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.channels = None if channels is None else int(channels)
        self.pad = int(pad)
        self.normalize = normalize
        self.resize = check_resize(resize)
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)

    @property
    def needs_fit(self) -> bool:
        return self.normalize in ("standardize", "center") and self.mean is None

    @property
    def output_shape(self) -> tuple[int, int, int]:
        if self.image_size is None or self.channels is None:
            raise DataError("preprocessing: image_size and channels are unknown until fit() sees the data")
        h, w = self.image_size
        return (h + 2 * self.pad, w + 2 * self.pad, self.channels)

    def fit(self, x: np.ndarray) -> Preprocessing:
        """Take image size, channels and (for standardize/center) statistics from training images.

        The statistics come from counts of the 256 pixel values (exact) and chunked sums, never
        from a float copy of the whole set: CIFAR-10's training images as float64 are 1.2 GB, and
        computing the moments of such a copy peaked at 3.7 GB.
        """
        x = self._check(x, fitting=True)
        if self.normalize == "standardize":
            mean, std = _moments(_value_counts(x))
            self.mean = (mean / 255.0).astype(np.float32)
            self.std = (std / 255.0).astype(np.float32)
        elif self.normalize == "center":
            total = np.zeros(x.shape[1:], np.float64)
            for start in range(0, len(x), _FIT_CHUNK):
                total += x[start : start + _FIT_CHUNK].sum(axis=0, dtype=np.float64)
            self.mean = (total / len(x)).astype(np.float32)
            _, std = _moments(_value_counts(x).sum(axis=0, keepdims=True))  # one std over every value
            self.std = np.asarray(std[0], np.float32)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> float32 (N, H + 2 pad, W + 2 pad, C)."""
        x = self._check(x)
        if self.needs_fit:
            raise DataError(f"preprocessing: normalize={self.normalize!r} needs fit() on the training images first")
        if self.pad:
            p = self.pad
            x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        out = x.astype(np.float32)
        if self.normalize == "unit":
            out *= np.float32(1.0 / 255.0)
        elif self.normalize == "standardize":
            out *= np.float32(1.0 / 255.0)
            out -= self.mean
            out /= self.std + np.float32(_EPS)
        elif self.normalize == "center":
            mean = self.mean
            if self.pad:  # the padding is black in every training image, so its mean is 0
                p = self.pad
                mean = np.pad(mean, ((p, p), (p, p), (0, 0)))
            out -= mean
            out /= self.std + np.float32(_EPS)
        return out

    def load_images(self, paths: Iterable) -> np.ndarray:
        """Decode image files (any Pillow format, mode or bit depth) to uint8 at image_size, channels."""
        from cnnlab.data.images import load_image_files

        return load_image_files(paths, self.image_size, self.channels, self.resize)

    def resize_images(self, x: np.ndarray) -> np.ndarray:
        """uint8 images (N, h, w, C) of any size brought to image_size by the resize policy.

        The same Pillow code as :meth:`load_images`, so an array and the file it came from give
        the same pixels. Images already at image_size are returned as they are.
        """
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[..., np.newaxis]
        if x.dtype != np.uint8 or x.ndim != 4:
            raise DataError(f"preprocessing: expected uint8 images (N, H, W, C), got {x.dtype} {x.shape}")
        if self.image_size is None:
            raise DataError("preprocessing: image_size is unknown, so there is no size to resize to")
        from cnnlab.data.images import resize_array

        return resize_array(x, self.image_size, self.resize)

    def _check(self, x: np.ndarray, fitting: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3 and (self.channels in (None, 1)):
            x = x[..., np.newaxis]  # (N, H, W) grayscale
        if x.dtype != np.uint8 or x.ndim != 4:
            raise DataError(f"preprocessing: expected uint8 images (N, H, W, C), got {x.dtype} {x.shape}")
        size, channels = (x.shape[1], x.shape[2]), x.shape[3]
        if fitting and self.image_size is None:
            self.image_size = size
        if fitting and self.channels is None:
            self.channels = channels
        wrong_size = self.image_size is not None and size != self.image_size
        wrong_channels = self.channels is not None and channels != self.channels
        if wrong_size or wrong_channels:
            raise DataError(
                f"preprocessing: expected images of {self.image_size} with {self.channels} channel(s), "
                f"got {size} with {channels}"
            )
        return x

    def to_dict(self) -> dict:
        """Plain JSON-ready settings and statistics (lists, not arrays)."""
        return {
            "image_size": None if self.image_size is None else list(self.image_size),
            "channels": self.channels,
            "pad": self.pad,
            "normalize": self.normalize,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "resize": self.resize,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {"image_size", "channels", "pad", "normalize", "mean", "std", "resize"}
        unknown = set(data) - known
        if unknown:
            raise DataError(f"preprocessing: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preprocessing) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"Preprocessing(image_size={self.image_size}, channels={self.channels}, pad={self.pad}, "
            f"normalize={self.normalize!r}, resize={self.resize!r})"
        )


def _value_counts(x: np.ndarray) -> np.ndarray:
    """(C, 256) int64: how often each uint8 value occurs in each channel of the (N, H, W, C) images."""
    channels = x.shape[-1]
    counts = np.zeros((channels, 256), np.int64)
    for start in range(0, len(x), _FIT_CHUNK):
        pixels = x[start : start + _FIT_CHUNK].reshape(-1, channels)
        for c in range(channels):
            counts[c] += np.bincount(pixels[:, c], minlength=256)
    return counts


def _moments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and (population) standard deviation of values 0-255 given their counts."""
    values = np.arange(256, dtype=np.float64)
    n = counts.sum(axis=1)
    mean = counts @ values / n
    variance = counts @ (values**2) / n - mean**2
    return mean, np.sqrt(np.maximum(variance, 0.0))
