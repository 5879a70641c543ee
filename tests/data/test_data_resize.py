"""Resize policies (squash, center-crop, pad), stored with the preprocessing, identical for files and
arrays; folder defaults for large photos; one-line errors for empty and single classes."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data.preprocessing import Preprocessing
from cnnlab.errors import DataError


def _wide_image():
    """40 wide x 20 high: a red left quarter, a green middle half, a blue right quarter."""
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10, 0] = 255
    image[:, 10:30, 1] = 255
    image[:, 30:, 2] = 255
    return image


@pytest.mark.parametrize("policy", ["squash", "center-crop", "pad"])
def test_policies_on_arrays_and_files_agree(tmp_path, policy):
    from PIL import Image

    Image.fromarray(_wide_image()).save(tmp_path / "wide.png")
    prep = Preprocessing(image_size=(10, 10), channels=3, resize=policy)
    from_file = prep.load_images([tmp_path / "wide.png"])
    from_array = prep.resize_images(_wide_image()[None])
    np.testing.assert_array_equal(from_file, from_array)
    assert from_file.shape == (1, 10, 10, 3)
    image = from_file[0].astype(int)
    if policy == "squash":  # all three bands, squeezed
        assert image[5, 0, 0] > 200 and image[5, 5, 1] > 200 and image[5, 9, 2] > 200
    elif policy == "center-crop":  # the middle 20x20 square: green only
        assert image[:, :, 1].min() > 200 and image[:, :, [0, 2]].max() < 60
    else:  # the whole picture in the middle 5 rows, black above and below
        assert image[:2].max() == 0 and image[-2:].max() == 0
        assert image[5, 0, 0] > 200 and image[5, 9, 2] > 200


def test_policy_is_stored_and_checked():
    prep = Preprocessing(image_size=(8, 8), channels=1, resize="center_crop")
    assert prep.to_dict()["resize"] == "center-crop"
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    old = {k: v for k, v in prep.to_dict().items() if k != "resize"}  # a run written before the policy existed
    assert Preprocessing.from_dict(old).resize == "squash"
    with pytest.raises(DataError, match="resize: expected one of squash, center-crop, pad"):
        Preprocessing(resize="stretch")


def test_large_jpegs_decode_at_reduced_scale_identically(tmp_path):
    """The folder loader and load_images give the same pixels for a large JPEG (both draft it)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "big"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(root / c / "0.jpg")
    data = load_dataset(f"folder:{root}", image_size=(48, 64), cache=False, list_files=True)
    files = [root / name for name in data.meta["files"]["train"]]
    direct = Preprocessing(image_size=(48, 64), channels=3).load_images(files)
    np.testing.assert_array_equal(data.train.x, direct)


def test_default_size_for_large_mixed_photos_is_announced(tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    sizes = [(240, 320), (300, 400), (600, 800)]
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(np.full((h, w, 3), 100 + i, np.uint8)).save(root / c / f"{i}.jpg")
    data = load_dataset(f"folder:{root}", cache=False)
    assert data.input_shape == (96, 128, 3)  # median 300x400, longer side capped at 128
    assert len(data.meta["notes"]) == 1 and "96x128" in data.meta["notes"][0]
    assert data.meta["resized"] == 6 and data.meta["source_sizes"] == {"240x320": 2, "300x400": 2, "600x800": 2}
    small = load_dataset(f"folder:{root}", image_size=32, resize="pad", cache=False)
    assert small.input_shape == (32, 32, 3) and small.train.x[:, 0].max() == 0  # black bands above


def test_empty_and_single_class_folders_are_one_line_errors(tmp_path):
    from PIL import Image

    root = tmp_path / "set"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "a" / "0.png")
    with pytest.raises(DataError, match=r"only one class \(a\)"):
        load_dataset(f"folder:{root}", cache=False)
    (root / "b").mkdir()
    with pytest.raises(DataError, match="class folder b has no images"):
        load_dataset(f"folder:{root}", cache=False)
    (root / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="class folder b has no images"):
        load_dataset(f"folder:{root}", cache=False)


def test_idx_labels_outside_the_class_names(tmp_path):
    from tests.data.helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "idx", classes=10)
    with pytest.raises(DataError, match="outside the 3 class names"):
        load_dataset(f"idx:{tmp_path / 'idx'}", class_names=["a", "b", "c"])
