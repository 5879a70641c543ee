"""The registry's contract: names, options, and one-line errors for bad input (no model is built)."""

from __future__ import annotations

import pytest

from cnnlab.errors import ModelError
from cnnlab.models import create_model, list_models, model_info


def test_patterns_filter_the_registry():
    names = list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    resnets = list_models("resnet*")
    assert resnets and all(n.startswith("resnet") for n in resnets)
    assert set(resnets) < set(names)
    assert list_models("no_such_model*") == []


def test_unknown_name_lists_close_names():
    with pytest.raises(ModelError) as error:
        create_model("resnet2O")
    message = str(error.value)
    assert "resnet2O" in message and "resnet20" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", list_models())
def test_too_small_input_states_the_minimum(name):
    info = model_info(name)
    if info.min_size == 1:
        pytest.skip(f"{name} accepts any image size")
    size = info.min_size - 1
    with pytest.raises(ModelError, match=rf"at least {info.min_size}x{info.min_size}"):
        create_model(name, input_shape=(size, info.min_size + 7, 3))


@pytest.mark.parametrize("classes", [0, -3, 2.5, "10", True])
def test_class_count_must_be_a_positive_integer(classes):
    with pytest.raises(ModelError, match="num_classes"):
        create_model("softmax", num_classes=classes)


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 0), ("a", 28, 1), 28])
def test_input_shape_must_be_three_positive_integers(shape):
    with pytest.raises(ModelError, match="input_shape"):
        create_model("softmax", input_shape=shape)


def test_unknown_option_is_named():
    with pytest.raises(ModelError, match="'widht'") as error:
        create_model("resnet20", widht=8)
    assert "width" in str(error.value)  # the real options are listed


def test_bad_option_value_is_a_model_error():
    with pytest.raises(ModelError, match="depth"):
        create_model("resnet20", depth=21)
    with pytest.raises(ModelError, match="init"):
        create_model("lenet5", init="uniform")


def test_every_model_is_documented():
    for name in list_models():
        info = model_info(name)
        assert info.description and info.paper
        assert info.builder.__doc__, f"{name}: builder has no docstring"
        assert len(info.input_shape) == 3 and info.min_size <= min(info.input_shape[:2])


@pytest.mark.parametrize(
    "name, options, needle",
    [
        (
            "airbench",
            {"widths": "16,32,64"},
            "airbench: option 'widths' expects a list like [64, 256, 256], got '16,32,64'",
        ),
        ("mnist_cnn", {"dropout": "none"}, "mnist_cnn: option 'dropout' expects a number, got 'none'"),
        ("densenet121", {"bottleneck": 1}, "densenet121: option 'bottleneck' expects true or false, got 1"),
    ],
)
def test_an_option_of_the_wrong_kind_is_a_one_line_error_before_building(name, options, needle):
    with pytest.raises(ModelError) as info:
        create_model(name, **options)
    assert str(info.value) == needle


def test_options_of_the_right_kind_pass_the_check():
    # one number for every block is a valid vgg_bn dropout; an int where the default is a float too
    assert create_model("vgg_bn", dropout=0.1).get_layer("block2_dropout").rate == 0.1
    assert create_model("airbench", widths=[8, 16, 16], logit_scale=1).count_params() > 0
