"""scikit-learn's bundled 8x8 handwritten digits, presented MNIST-style at 28x28.

The UCI "Optical Recognition of Handwritten Digits" set (1,797 images, values 0..16) ships with
scikit-learn, so it needs no download: the offline default of the demo. Each image is scaled to
0..255, resized to 20x20 and centred in a 28x28 black frame, as LeCun et al. normalised MNIST
digits ("fit in a 20x20 pixel box ... centered in a 28x28 image"), so every MNIST model takes it.
"""

from __future__ import annotations

import numpy as np

from cnnlab.data.types import Split

DIGITS_CLASSES = [str(d) for d in range(10)]
TEST_FRACTION = 0.2  # the last 20% of the bundled order is the test split
BOX, FRAME = 20, 28


def load_digits_splits(splits=("train", "test")) -> tuple[Split, Split, dict]:
    """Train (first 80%) and test (last 20%) splits of the digits as uint8 (N, 28, 28, 1)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = upscale(bunch.images, max_value=16.0)
    labels = bunch.target.astype(np.int64)
    n_test = int(round(len(images) * TEST_FRACTION))
    cut = len(images) - n_test
    train = Split(images[:cut], labels[:cut]) if "train" in splits else Split.empty(images.shape[1:])
    test = Split(images[cut:], labels[cut:]) if "test" in splits else Split.empty(images.shape[1:])
    meta = {
        "source": "sklearn.datasets.load_digits",
        "original_size": [8, 8],
        "presented_as": f"{BOX}x{BOX} digit centred in {FRAME}x{FRAME}",
        "test": f"last {n_test} images",
    }
    return train, test, meta


def upscale(images: np.ndarray, max_value: float) -> np.ndarray:
    """(N, 8, 8) values 0..max_value -> uint8 (N, 28, 28, 1): bilinear to 20x20, centred in 28x28."""
    from scipy.ndimage import zoom

    scaled = images.astype(np.float32) * (255.0 / max_value)
    factor = BOX / images.shape[1]
    # order=1: bilinear; grid_mode maps pixel areas (not centres) so edges stay aligned.
    big = zoom(scaled, (1, factor, factor), order=1, mode="grid-constant", grid_mode=True)
    pad = (FRAME - BOX) // 2
    framed = np.zeros((len(images), FRAME, FRAME, 1), np.uint8)
    framed[:, pad : pad + BOX, pad : pad + BOX, 0] = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    return framed
