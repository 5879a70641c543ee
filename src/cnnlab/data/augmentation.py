"""Random image augmentation on uint8 batches, vectorised over the batch with NumPy.

The parameters follow Keras's ``ImageDataGenerator`` (Jake Tae's tutorial uses ``width_shift_range=0.2,
height_shift_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest"``):

- ``shift`` s: translate by up to s * width horizontally and s * height vertically, uniformly.
- ``zoom`` z: scale each axis by an independent factor in [1 - z, 1 + z] (factor > 1 zooms out).
- ``rotation`` r: rotate by an angle in [-r, r] degrees.
- ``flip``: mirror left-right with probability 1/2 (``True``), or ``"alternate"``: airbench94's
  "derandomized" flip (Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU"):
  each image is mirrored in every other epoch, starting mirrored or not by a coin fixed per image
  (from the run's seed and the image's index), so that any two consecutive epochs show every
  image once each way. It needs to know the epoch and the images' indices in the training set:
  ``aug(x, rng, epoch=e, indices=rows, seed=s)``; a caller that does not pass both gets the random
  flip of ``True``.
- ``crop_padding`` p: pad p black pixels on each side and crop a random window of the original
  size (the CIFAR recipe of He et al. 2016, "Deep residual learning", sec. 4.2).
- ``fill``: how points outside the image are filled, as in Keras / ``scipy.ndimage``:
  ``nearest`` (aaaa|abcd|dddd), ``reflect`` (dcba|abcd|dcba), ``wrap`` (abcd|abcd|abcd) or
  ``constant`` (black).

How: for every output pixel of every image the source coordinate is computed at once, as arrays
of shape (N, H, W), from a per-image affine matrix about the image centre (the inverse mapping
``scipy.ndimage.affine_transform`` uses), then the batch is gathered with one fancy index,
nearest-neighbour. No Python loop over images.
"""

from __future__ import annotations

import logging

import numpy as np

from cnnlab.errors import DataError

logger = logging.getLogger(__name__)

FILL_MODES = ("nearest", "reflect", "wrap", "constant")
FLIP_MODES = (False, True, "alternate")  # none, random (probability 1/2), alternate epochs


class Augmentation:
    """Random shift / zoom / rotation / flip / pad-and-crop, applied as ``aug(x_uint8, rng)``."""

    def __init__(
        self,
        shift: float = 0.0,
        zoom: float = 0.0,
        rotation: float = 0.0,
        flip: bool | str = False,
        crop_padding: int = 0,
        fill: str = "nearest",
    ):
        if fill not in FILL_MODES:
            raise DataError(f"fill: expected one of {', '.join(FILL_MODES)}, got {fill!r}")
        if not 0 <= float(shift) < 1:
            raise DataError(f"shift: expected a fraction of the image size in [0, 1), got {shift}")
        if not 0 <= float(zoom) < 1:
            raise DataError(f"zoom: expected a value in [0, 1), got {zoom}")
        if not 0 <= float(rotation) <= 180:
            raise DataError(f"rotation: expected degrees in [0, 180], got {rotation}")
        if int(crop_padding) < 0:
            raise DataError(f"crop_padding: expected a non-negative number of pixels, got {crop_padding}")
        self.shift = float(shift)
        self.zoom = float(zoom)
        self.rotation = float(rotation)
        self.flip = _flip_mode(flip)
        self.crop_padding = int(crop_padding)
        self.fill = fill

    @property
    def enabled(self) -> bool:
        """False when every transformation is off (the call then returns a copy of its input)."""
        return bool(self.shift or self.zoom or self.rotation or self.flip or self.crop_padding)

    def __call__(
        self,
        x: np.ndarray,
        rng: np.random.Generator | int | None = None,
        *,
        epoch: int | None = None,
        indices: np.ndarray | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """A randomly transformed copy of the uint8 batch ``x`` (N, H, W, C).

        ``epoch``, ``indices`` (each image's row in the training set) and ``seed`` are used by
        ``flip="alternate"`` only, and only when both ``epoch`` and ``indices`` are given.
        """
        x = np.asarray(x)
        if x.ndim != 4:
            raise DataError(f"augmentation: expected a batch (N, H, W, C), got shape {x.shape}")
        if not self.enabled or len(x) == 0:
            return x.copy()
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        n, h, w, channels = x.shape
        # Coordinates stay broadcastable ((N|1, H|1, W|1)) while only integer shifts are involved.
        rows = np.arange(h)[None, :, None]
        cols = np.arange(w)[None, None, :]
        inside = None

        if self.crop_padding:
            # Window offset in the padded image, minus the padding: an integer shift in [-p, p];
            # pixels that come from the padding are black whatever the fill mode.
            p = self.crop_padding
            dr, dc = rng.integers(-p, p + 1, size=(2, n, 1, 1))
            rows, cols = rows + dr, cols + dc
            inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)

        if self.shift or self.zoom or self.rotation:
            src_r, src_c = self._affine_source(rows.astype(np.float32), cols.astype(np.float32), n, h, w, rng)
            rows, cols = np.rint(src_r).astype(np.intp), np.rint(src_c).astype(np.intp)

        if self.flip == "alternate" and epoch is not None and indices is not None:
            if len(indices) != n:
                raise DataError(f"augmentation: {len(indices)} indices for a batch of {n} images")
            mirrored = (alternate_flips(indices, epoch, seed))[:, None, None]
            cols = np.where(mirrored, (w - 1) - cols, cols)
        elif self.flip:
            if self.flip == "alternate" and not getattr(self, "_warned", False):
                self._warned = True
                logger.warning(
                    "augmentation: flip='alternate' needs the epoch and the images' indices, which this "
                    "caller does not pass; flipping at random instead"
                )
            mirrored = (rng.random(n) < 0.5)[:, None, None]
            cols = np.where(mirrored, (w - 1) - cols, cols)

        if self.fill == "constant":
            valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            inside = valid if inside is None else inside & valid
        rows, cols = _fill_index(rows, h, self.fill), _fill_index(cols, w, self.fill)
        # One gather over the flattened batch: pixel (i, r, c) is row (i*h + r)*w + c.
        flat = (np.arange(n)[:, None, None] * h + rows) * w + cols
        out = x.reshape(n * h * w, channels)[flat]
        if inside is not None:
            out[~np.broadcast_to(inside, flat.shape)] = 0
        return out

    def _affine_source(self, rows, cols, n, h, w, rng):
        """Source coordinates (float32, (N, H, W)) of each output pixel under a random rotation, zoom and shift."""
        theta = np.deg2rad(rng.uniform(-self.rotation, self.rotation, n)) if self.rotation else np.zeros(n)
        if self.zoom:
            zr, zc = rng.uniform(1 - self.zoom, 1 + self.zoom, size=(2, n))
        else:
            zr = zc = np.ones(n)
        if self.shift:
            tr = rng.uniform(-self.shift, self.shift, n) * h
            tc = rng.uniform(-self.shift, self.shift, n) * w
        else:
            tr = tc = np.zeros(n)

        def per_image(values):
            return np.asarray(values, np.float32)[:, None, None]

        # [r', c'] = R(theta) @ diag(zr, zc) @ ([r, c] - centre) + centre + t, as Keras composes them.
        a, b = per_image(np.cos(theta) * zr), per_image(-np.sin(theta) * zc)
        c, d = per_image(np.sin(theta) * zr), per_image(np.cos(theta) * zc)
        cr, cc = np.float32((h - 1) / 2.0), np.float32((w - 1) / 2.0)
        dr, dc = rows - cr, cols - cc
        src_r = a * dr + b * dc + (cr + per_image(tr))
        src_c = c * dr + d * dc + (cc + per_image(tc))
        return src_r, src_c

    def to_dict(self) -> dict:
        return {
            "shift": self.shift,
            "zoom": self.zoom,
            "rotation": self.rotation,
            "flip": self.flip,
            "crop_padding": self.crop_padding,
            "fill": self.fill,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Augmentation:
        data = dict(data or {})
        unknown = set(data) - set(cls().to_dict())
        if unknown:
            raise DataError(f"augmentation: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Augmentation) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Augmentation({args})"


def alternate_flips(indices, epoch: int, seed: int = 0) -> np.ndarray:
    """Which images of ``indices`` the alternating flip mirrors in ``epoch``: a fixed coin per
    (seed, index), inverted in odd epochs. Vectorised: the coin is the top bit of SplitMix64
    (Steele et al. 2014) of the index offset by the seed, so it needs no table over the data set."""
    with np.errstate(over="ignore"):
        z = np.asarray(indices, dtype=np.uint64) + np.uint64(int(seed) % 2**64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(63)).astype(bool) ^ bool(int(epoch) % 2)


def _flip_mode(value) -> bool | str:
    """``flip``'s setting: False, True (random) or "alternate"; also the words TOML or a CLI may give."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    words = {"false": False, "none": False, "true": True, "random": True, "alternate": "alternate"}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise DataError(f'flip: expected true, false or "alternate", got {value!r}')


def _fill_index(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Map integer coordinates outside [0, size) back inside, per fill mode (constant: clipped, masked later)."""
    if mode == "wrap":
        return np.mod(index, size)
    if mode == "reflect":
        period = np.mod(index, 2 * size)
        return np.where(period >= size, 2 * size - 1 - period, period)
    return np.clip(index, 0, size - 1)
