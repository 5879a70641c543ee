"""``cnnlab predict``: real MNIST digits written as image files in many formats give the model's answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.runs.helpers import reference_probabilities

# Lossless encodings of the same 28x28 digit: predict must see exactly the training array.
LOSSLESS = ("gray.png", "rgb.png", "rgba.png", "gray16.png", "digit.bmp")
# Lossy or resampled: the array changes a little; the predicted class must not.
APPROXIMATE = ("digit.jpg", "large.png")


@pytest.fixture(scope="module")
def confident_digit(short_run, test_split):
    """A test image the model classifies correctly with probability > 0.9, and its probabilities."""
    probabilities = reference_probabilities(short_run, test_split.x)
    predicted = probabilities.argmax(axis=1)
    good = np.flatnonzero((predicted == test_split.y) & (probabilities.max(axis=1) > 0.9))
    assert len(good), "the short run classifies no test image with confidence > 0.9"
    index = good[0]
    return test_split.x[index, ..., 0], probabilities[index]


def _write_variants(folder, digit: np.ndarray) -> None:
    """The digit (uint8 28x28) as grayscale, RGB, RGBA, 16-bit PNG, BMP, JPEG and at twice the size."""
    gray = Image.fromarray(digit, mode="L")
    gray.save(folder / "gray.png")
    gray.convert("RGB").save(folder / "rgb.png")
    rgba = gray.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(folder / "rgba.png")
    wide = Image.fromarray(digit.astype(np.uint16) * 257)  # 16-bit: 0..65535 with the same shades
    assert wide.mode.startswith("I")
    wide.save(folder / "gray16.png")
    gray.save(folder / "digit.bmp")
    gray.save(folder / "digit.jpg", quality=95)
    gray.resize((56, 56), Image.Resampling.BICUBIC).save(folder / "large.png")
    (folder / "notes.txt").write_text("not an image; a directory listing skips it\n")


def test_predict_image_files(short_run, confident_digit, tmp_path):
    digit, expected = confident_digit
    _write_variants(tmp_path, digit)
    proc = run_cli("predict", short_run.path, tmp_path, "--top-k", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    predictions = json.loads(proc.stdout)

    names = [prediction["file"].rsplit("/", 1)[-1] for prediction in predictions]
    assert names == sorted(LOSSLESS + APPROXIMATE)  # the directory, expanded and sorted, without notes.txt
    expected_class = short_run.class_names[int(expected.argmax())]
    for name, prediction in zip(names, predictions):
        top = prediction["top"]
        assert len(top) == 3
        probabilities = [entry["probability"] for entry in top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert top[0]["class"] == expected_class, name
        if name in LOSSLESS:
            for entry in top:
                index = short_run.class_names.index(entry["class"])
                assert entry["probability"] == pytest.approx(expected[index], abs=1e-5), name


def test_predict_api_matches_the_model_on_the_same_array(short_run, test_split, tmp_path):
    """Two different test digits through the Python API: probabilities equal the model's on the arrays."""
    from cnnlab.inference import predict
    from cnnlab.inference.prediction import format_predictions

    images = test_split.x[:2]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"digit-{i}.png")
        Image.fromarray(image[..., 0]).save(paths[-1])
    expected = reference_probabilities(short_run, images)
    predictions = predict(short_run, paths, top_k=10)
    for prediction, row in zip(predictions, expected):
        got = np.zeros(10)
        for entry in prediction["top"]:
            got[entry["index"]] = entry["probability"]
        np.testing.assert_allclose(got, row, atol=1e-5)
    text = format_predictions(predictions)
    assert len(text.splitlines()) == 2 and str(paths[0]) in text
