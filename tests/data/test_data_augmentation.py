"""Augmentation: geometry of each transform, fill modes, determinism, settings round trip."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.augmentation import Augmentation
from cnnlab.errors import DataError


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, (64, 16, 12, 3), dtype=np.uint8)


def _dot_batch(n=200, size=33):
    """n copies of a black image with one white pixel in the centre."""
    x = np.zeros((n, size, size, 1), np.uint8)
    x[:, size // 2, size // 2] = 255
    return x


def test_no_transform_returns_an_equal_copy(batch):
    out = Augmentation()(batch, np.random.default_rng(1))
    assert out is not batch
    np.testing.assert_array_equal(out, batch)


def test_same_generator_state_same_result_different_seed_different_result(batch):
    aug = Augmentation(shift=0.2, zoom=0.2, rotation=10, flip=True, crop_padding=2)
    a = aug(batch, np.random.default_rng(7))
    b = aug(batch, np.random.default_rng(7))
    c = aug(batch, np.random.default_rng(8))
    assert a.shape == batch.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_flip_mirrors_about_half_the_images_left_right(batch):
    out = Augmentation(flip=True)(batch, np.random.default_rng(2))
    same = np.all(out == batch, axis=(1, 2, 3))
    mirrored = np.all(out == batch[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 10 < mirrored.sum() < 54


def test_crop_padding_is_an_integer_shift_with_black_fill(batch):
    p = 3
    out = Augmentation(crop_padding=p)(batch, np.random.default_rng(3))
    padded = np.pad(batch, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = batch.shape[1:3]
    for image, source in zip(out, padded):
        windows = [source[r : r + h, c : c + w] for r in range(2 * p + 1) for c in range(2 * p + 1)]
        assert any(np.array_equal(image, window) for window in windows)


def test_shift_moves_a_dot_by_at_most_the_fraction_of_the_size():
    x = _dot_batch()
    out = Augmentation(shift=0.2)(x, np.random.default_rng(4))
    rows, cols = np.nonzero(out[..., 0] == 255)[1:]
    limit = 0.2 * 33 + 1  # + 1 for nearest-neighbour rounding
    assert np.abs(rows - 16).max() <= limit and np.abs(cols - 16).max() <= limit
    assert np.abs(cols - 16).max() >= 4  # it does move


def test_zoom_scales_a_square_within_the_range():
    x = np.zeros((300, 41, 41, 1), np.uint8)
    x[:, 10:31, 10:31] = 255  # a 21-pixel square
    out = Augmentation(zoom=0.2)(x, np.random.default_rng(5))
    widths = (out[:, 20, :, 0] == 255).sum(axis=1)
    # zoom factor z in [0.8, 1.2] maps output to input coordinates: the square becomes 21 / z wide.
    assert widths.min() >= 21 / 1.2 - 2 and widths.max() <= 21 / 0.8 + 2
    assert widths.max() - widths.min() >= 4


def test_rotation_keeps_a_centred_disc_and_moves_an_off_centre_dot():
    x = _dot_batch()
    x[:, 16, 28] = 255  # a second dot 12 pixels right of the centre
    out = Augmentation(rotation=30)(x, np.random.default_rng(6))
    assert np.all(out[:, 16, 16, 0] == 255)  # the centre is fixed
    moved = out[:, 16, 28, 0] != 255
    assert moved.mean() > 0.5


@pytest.mark.parametrize("fill", ["nearest", "reflect", "wrap", "constant"])
def test_constant_images_stay_constant_except_constant_fill(fill):
    x = np.full((50, 10, 10, 3), 77, np.uint8)
    out = Augmentation(shift=0.3, zoom=0.3, rotation=45, fill=fill)(x, np.random.default_rng(0))
    if fill == "constant":
        assert set(np.unique(out)) == {0, 77}
    else:
        assert np.all(out == 77)


def test_fill_modes_follow_scipy_conventions():
    row = np.arange(5, dtype=np.uint8).reshape(1, 1, 5, 1) * 10  # [0 10 20 30 40]
    x = np.repeat(row, 400, axis=0)
    for fill, allowed in [("nearest", {0, 10, 20, 30, 40}), ("wrap", {0, 10, 20, 30, 40})]:
        out = Augmentation(shift=0.5 - 1e-9, fill=fill)(x, np.random.default_rng(1))
        assert set(np.unique(out)) <= allowed
    out = Augmentation(shift=0.4, fill="nearest")(x, np.random.default_rng(2))
    # nearest repeats the edge value: a left-shifted row ends in runs of 40, never wraps to 0 after 40
    for r in out[:, 0, :, 0]:
        assert np.all(np.diff(r.astype(int)) >= 0)


def test_settings_round_trip_and_validation():
    aug = Augmentation(shift=0.1, zoom=0.2, rotation=15, flip=True, crop_padding=4, fill="reflect")
    assert Augmentation.from_dict(aug.to_dict()) == aug
    with pytest.raises(DataError, match="fill"):
        Augmentation(fill="mirror")
    with pytest.raises(DataError, match="unknown"):
        Augmentation.from_dict({"shear": 0.2})


def _mirrored(out, batch):
    """Per image: True if ``out`` is ``batch`` mirrored left-right, False if unchanged."""
    same = np.all(out == batch, axis=(1, 2, 3))
    flipped = np.all(out == batch[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same ^ flipped), "every image is either kept or mirrored"
    return flipped


def test_alternate_flip_shows_each_image_once_each_way_in_consecutive_epochs(batch):
    aug = Augmentation(flip="alternate")
    rows = np.arange(1000, 1000 + len(batch))
    flips = np.array(
        [
            _mirrored(aug(batch, np.random.default_rng(epoch), epoch=epoch, indices=rows, seed=3), batch)
            for epoch in range(4)
        ]
    )
    assert 0.25 < flips[0].mean() < 0.75  # a coin per image in the first epoch
    np.testing.assert_array_equal(flips[1], ~flips[0])  # then every image the other way
    np.testing.assert_array_equal(flips[2], flips[0])
    np.testing.assert_array_equal(flips[3], flips[1])


def test_alternate_flip_follows_the_image_not_its_place_in_the_batch(batch):
    aug = Augmentation(flip="alternate")
    rows = np.arange(len(batch)) * 7
    order = np.random.default_rng(0).permutation(len(batch))
    first = _mirrored(aug(batch, 1, epoch=5, indices=rows, seed=0), batch)
    shuffled = _mirrored(aug(batch[order], 2, epoch=5, indices=rows[order], seed=0), batch[order])
    np.testing.assert_array_equal(shuffled, first[order])
    other_seed = _mirrored(aug(batch, 1, epoch=5, indices=rows, seed=1), batch)
    assert not np.array_equal(other_seed, first)  # the run's seed draws the coins


def test_alternate_flip_without_epoch_and_indices_is_the_random_flip(batch, caplog):
    # Callers that do not pass the epoch get what flip=True gives, draw for draw.
    expected = Augmentation(flip=True, crop_padding=2)(batch, np.random.default_rng(4))
    aug = Augmentation(flip="alternate", crop_padding=2)
    with caplog.at_level("WARNING", logger="cnnlab.data.augmentation"):
        out = aug(batch, np.random.default_rng(4))
        aug(batch, np.random.default_rng(5))
    np.testing.assert_array_equal(out, expected)
    assert [r.getMessage() for r in caplog.records] == [
        "augmentation: flip='alternate' needs the epoch and the images' indices, which this caller does not pass; "
        "flipping at random instead"
    ]  # said once, not per batch


def test_alternate_flip_settings_round_trip_and_bad_values_are_refused(batch):
    aug = Augmentation(flip="alternate", crop_padding=2)
    assert Augmentation.from_dict(aug.to_dict()) == aug and aug.to_dict()["flip"] == "alternate"
    assert Augmentation(flip="random").flip is True and Augmentation(flip="false").flip is False
    with pytest.raises(DataError, match="flip: expected true, false or \"alternate\", got 'sometimes'"):
        Augmentation(flip="sometimes")
    with pytest.raises(DataError, match="3 indices for a batch of 64 images"):
        aug(batch, 0, epoch=0, indices=[1, 2, 3])
