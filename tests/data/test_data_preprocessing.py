"""Preprocessing: normalisations against their formulas, padding, image decoding, round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.preprocessing import Preprocessing
from cnnlab.errors import DataError


@pytest.fixture
def rgb_batch():
    return np.random.default_rng(0).integers(0, 256, (20, 6, 5, 3), dtype=np.uint8)


def test_unit_is_x_over_255(rgb_batch):
    out = Preprocessing(normalize="unit")(rgb_batch)
    assert out.dtype == np.float32 and out.shape == rgb_batch.shape
    np.testing.assert_allclose(out, rgb_batch / 255.0, rtol=1e-6)


def test_standardize_uses_training_statistics_per_channel(rgb_batch):
    prep = Preprocessing(normalize="standardize").fit(rgb_batch)
    out = prep(rgb_batch)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)
    other = np.full((2, 6, 5, 3), 255, np.uint8)  # a new batch is scaled with the *training* statistics
    expected = (1.0 - rgb_batch.mean(axis=(0, 1, 2)) / 255.0) / (rgb_batch / 255.0).std(axis=(0, 1, 2))
    np.testing.assert_allclose(prep(other)[0, 0, 0], expected, rtol=1e-4)


def test_center_matches_seed_3_formula(rgb_batch):
    out = Preprocessing(normalize="center").fit(rgb_batch)(rgb_batch)
    x = rgb_batch.astype(np.float64)
    np.testing.assert_allclose(out, (x - x.mean(axis=0)) / x.std(), rtol=1e-4, atol=1e-5)


def test_statistics_over_many_chunks_equal_the_float64_formulas(monkeypatch):
    """fit() counts values chunk by chunk instead of copying the set to float64: same numbers."""
    import cnnlab.data.preprocessing as preprocessing

    monkeypatch.setattr(preprocessing, "_FIT_CHUNK", 7)  # 50 images: 8 chunks, the last one short
    x = np.random.default_rng(2).integers(0, 256, (50, 4, 3, 3), dtype=np.uint8)
    x[:, :, :, 2] //= 4  # channels with different statistics
    values = x.astype(np.float64)
    standardize = Preprocessing(normalize="standardize").fit(x)
    np.testing.assert_allclose(standardize.mean, values.mean(axis=(0, 1, 2)) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(standardize.std, values.std(axis=(0, 1, 2)) / 255.0, rtol=1e-6)
    center = Preprocessing(normalize="center").fit(x)
    np.testing.assert_allclose(center.mean, values.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(center.std, values.std(), rtol=1e-6)


@pytest.mark.parametrize("normalize", ["unit", "standardize", "center", "none"])
def test_pad_28_to_32_adds_black_border(normalize):
    x = np.random.default_rng(1).integers(1, 256, (4, 28, 28, 1), dtype=np.uint8)
    prep = Preprocessing(pad=2, normalize=normalize).fit(x)
    out = prep(x)
    assert out.shape == (4, 32, 32, 1) == (4, *prep.output_shape)
    black = Preprocessing.from_dict(prep.to_dict())  # a black image has the border's values everywhere
    unpadded = Preprocessing(normalize=normalize, mean=prep.mean, std=prep.std)
    if normalize == "center":  # the per-pixel mean of the padded border is 0
        np.testing.assert_allclose(out[:, 0, :, :], 0.0, atol=1e-6)
    else:
        border_value = unpadded(np.zeros((1, 28, 28, 1), np.uint8))[0, 0, 0, 0]
        np.testing.assert_allclose(out[:, 0, :, :], border_value, atol=1e-6)
    np.testing.assert_allclose(
        out[:, 2:30, 2:30],
        unpadded(x) if normalize != "center" else (x - x.astype(np.float64).mean(0)) / x.astype(np.float64).std(),
        rtol=1e-4,
        atol=1e-5,
    )
    assert black == prep


def test_to_dict_is_plain_json_and_round_trips(rgb_batch):
    prep = Preprocessing(image_size=(6, 5), channels=3, pad=1, normalize="standardize").fit(rgb_batch)
    data = json.loads(json.dumps(prep.to_dict()))
    assert isinstance(data["mean"], list) and len(data["mean"]) == 3
    again = Preprocessing.from_dict(data)
    np.testing.assert_array_equal(again(rgb_batch), prep(rgb_batch))


def test_wrong_shape_and_unfitted_statistics_are_clear_errors(rgb_batch):
    prep = Preprocessing(image_size=(28, 28), channels=1)
    with pytest.raises(DataError, match="expected images of"):
        prep(rgb_batch)
    with pytest.raises(DataError, match="needs fit"):
        Preprocessing(normalize="standardize")(rgb_batch)
    with pytest.raises(DataError, match="normalize"):
        Preprocessing(normalize="zscore")


def _write(path, array, mode, **save):
    image = Image.fromarray(array)
    assert image.mode == mode
    image.save(path, **save)
    return path


def test_load_images_any_mode_size_and_format(tmp_path):
    gray = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))
    files = [
        _write(tmp_path / "gray.png", gray, "L"),
        _write(tmp_path / "rgb.jpg", np.stack([gray] * 3, -1), "RGB", quality=95),
        _write(tmp_path / "rgba.png", np.dstack([gray] * 3 + [np.full_like(gray, 255)]), "RGBA"),
        _write(tmp_path / "bmp.bmp", np.stack([gray] * 3, -1), "RGB"),
    ]
    pal = Image.fromarray(gray).convert("P")
    pal.save(tmp_path / "pal.png")
    files.append(tmp_path / "pal.png")
    wide = gray.astype(np.uint16) * 257  # 16-bit: 65535 is white
    Image.fromarray(wide).save(tmp_path / "wide.png")
    files.append(tmp_path / "wide.png")
    big = np.stack([np.kron(gray, np.ones((3, 3), np.uint8))] * 3, -1)  # 90x120, shrunk to 30x40
    files.append(_write(tmp_path / "big.png", big, "RGB"))

    for channels in (1, 3):
        out = Preprocessing(image_size=(30, 40), channels=channels).load_images(files)
        assert out.shape == (len(files), 30, 40, channels) and out.dtype == np.uint8
        for image in out:  # every copy shows the same ramp, within JPEG and resampling error
            assert np.abs(image[..., 0].astype(int) - gray).max() <= 6


def test_16_bit_image_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "w.png")
    out = Preprocessing(image_size=(1, 4), channels=1).load_images([tmp_path / "w.png"])
    assert out[0, 0, :, 0].tolist() == [0, 1, 128, 255]


def test_transparent_pixels_become_black(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # only the top-left pixel is opaque white
    _write(tmp_path / "a.png", rgba, "RGBA")
    out = Preprocessing(image_size=(2, 2), channels=1).load_images([tmp_path / "a.png"])
    assert out[0, :, :, 0].tolist() == [[255, 0], [0, 0]]


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png"):
        Preprocessing(image_size=(8, 8), channels=1).load_images([bad])
    truncated = tmp_path / "cut.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 99).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match="cut.jpg"):
        Preprocessing(image_size=(8, 8), channels=1).load_images([truncated])
