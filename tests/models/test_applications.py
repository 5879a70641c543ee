"""Keras Applications backbones: registry entries, their input preprocessing, a small build, and
ImageNet-style weights loaded from a file on disk (saved here: there is no network)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models import create_model, list_models, model_info
from cnnlab.models.applications import APPLICATIONS, backbone, input_affine
from cnnlab.models.transfer import freeze

NAMES = [
    "keras_convnext_tiny",
    "keras_efficientnet_b0",
    "keras_mobilenet_v2",
    "keras_mobilenet_v3_small",
    "keras_resnet50",
]


def test_registered_with_tags_and_documented():
    assert list_models("keras_*") == NAMES
    for name in NAMES:
        info = model_info(name)
        assert "keras-applications" in info.tags and info.min_size == 32 and info.paper
        assert info.options["weights"] is None and info.options["input_range"] == 1.0


def test_the_backbone_is_the_models_name_not_an_option():
    # keras_resnet50 with application=keras_mobilenet_v2 would build a MobileNet named keras_resnet50
    assert set(model_info("keras_resnet50").options) == {"weights", "input_range", "dropout"}
    with pytest.raises(ModelError, match="unknown option 'application'"):
        create_model("keras_resnet50", (32, 32, 3), 5, application="keras_mobilenet_v2")


def _apply(kernel, bias, x):
    return np.einsum("nhwc,cd->nhwd", x, kernel[0, 0]) + bias


@pytest.mark.parametrize("name, module", [("keras_resnet50", "resnet50"), ("keras_mobilenet_v2", "mobilenet_v2")])
def test_input_map_is_the_applications_preprocess_input(name, module):
    x = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    preprocess = getattr(keras.applications, module).preprocess_input
    expected = keras.ops.convert_to_numpy(preprocess(x * 255.0))
    np.testing.assert_allclose(_apply(*input_affine(APPLICATIONS[name][1], 3, 1.0), x), expected, atol=1e-3)
    raw = _apply(*input_affine(APPLICATIONS[name][1], 3, 255.0), x * 255.0)  # input_range=255
    np.testing.assert_allclose(raw, expected, atol=1e-3)
    gray = x[..., :1]
    expected_gray = keras.ops.convert_to_numpy(preprocess(np.repeat(gray, 3, axis=-1) * 255.0))
    np.testing.assert_allclose(_apply(*input_affine(APPLICATIONS[name][1], 1, 1.0), gray), expected_gray, atol=1e-3)


@pytest.fixture(scope="module")
def small_backbone_weights(tmp_path_factory):
    """MobileNetV3-Small's backbone weights, saved as a user's ImageNet file would be loaded."""
    keras.utils.set_random_seed(3)
    net = backbone("keras_mobilenet_v3_small", (32, 32, 3))
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small_notop.weights.h5"
    net.save_weights(path)
    return path, [w.copy() for w in net.get_weights()]


def test_weights_from_a_file_on_disk(small_backbone_weights):
    path, saved = small_backbone_weights
    model = create_model("keras_mobilenet_v3_small", (32, 32, 1), num_classes=3, weights=str(path))
    assert model.name == "keras_mobilenet_v3_small"
    for mine, theirs in zip(model.get_layer("backbone").get_weights(), saved):
        np.testing.assert_array_equal(mine, theirs)
    logits = keras.ops.convert_to_numpy(model(np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)))
    assert logits.shape == (2, 3) and np.isfinite(logits).all()
    report = freeze(model, "backbone")
    assert report.batch_norm > 0
    head = [w for name in ("Conv_2", "logits") for w in model.get_layer(name).trainable_weights]
    assert [id(w) for w in model.trainable_weights] == [id(w) for w in head]
    freeze(model, "none")
    assert not model.get_layer("imagenet_input").trainable  # the fixed preprocessing is never trained


def test_missing_or_foreign_weights_are_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="not found.*weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"):
        create_model("keras_mobilenet_v3_small", (32, 32, 3), weights=str(tmp_path / "none.h5"))
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(ModelError, match="cannot load weights") as error:
        create_model("keras_mobilenet_v3_small", (32, 32, 3), weights=str(tmp_path / "other.weights.h5"))
    assert "\n" not in str(error.value)
