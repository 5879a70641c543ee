"""Fine-tuning helpers: weights by layer name and shape, head replacement, freezing with batch norm
kept in inference mode (the Keras pitfall)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.models import create_model
from cnnlab.models.transfer import flat_layers, freeze, load_weights_by_name, replace_head, unfreeze, weighted_layers

SHAPE = (16, 16, 3)


def _resnet(classes: int, seed: int):
    keras.utils.set_random_seed(seed)
    return create_model("resnet20", SHAPE, num_classes=classes, width=8, depth=8)


def _batch_norms(model):
    return [layer for layer in flat_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.fixture(scope="module")
def source_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("source")
    model = _resnet(4, seed=1)
    # Give the batch-norm statistics values a fresh model cannot have, so loading them is visible.
    for layer in _batch_norms(model):
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.5, np.float32))
    (folder / "run").mkdir()
    model.save(folder / "run" / "model.keras")
    model.save(folder / "model.keras")
    model.save_weights(folder / "model.weights.h5")
    return model, folder


@pytest.mark.parametrize("kind", ["run", "model.keras", "model.weights.h5"])
def test_weights_by_name_and_shape_from_each_kind_of_source(source_files, kind):
    source, folder = source_files
    target = _resnet(3, seed=2)  # another class count: everything but the classifier matches
    report = load_weights_by_name(target, folder / kind)
    assert [name for name, _ in report.unmatched] == ["logits"]
    assert "shape" in report.unmatched[0][1] and "x4" in report.unmatched[0][1]
    assert len(report.matched) == len(weighted_layers(target)) - 1
    for layer in weighted_layers(target):
        if layer.name == "logits":
            continue
        for mine, theirs in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert "not loaded: logits" in report.summary()


def test_no_layer_in_common_and_bad_sources_are_one_line_errors(source_files, tmp_path):
    _, folder = source_files
    other = create_model("lenet5", (32, 32, 1), num_classes=3)
    with pytest.raises(ModelError, match="no layer of lenet5 matches"):
        load_weights_by_name(other, folder / "model.keras")
    with pytest.raises(ModelError, match="no model.keras in this run folder"):
        load_weights_by_name(other, tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ModelError, match="expected a run folder"):
        load_weights_by_name(other, tmp_path / "x.txt")


def test_replace_head(source_files):
    source, _ = source_files
    model = replace_head(source, 7)
    assert model.output.shape[-1] == 7
    assert model.get_layer("logits").kernel.shape == (source.get_layer("logits").kernel.shape[0], 7)
    assert model.get_layer("stem_conv") is source.get_layer("stem_conv")  # the backbone is shared
    assert replace_head(source, 4) is source


def test_freeze_specs():
    model = _resnet(3, seed=0)
    leaves = flat_layers(model)
    report = freeze(model, "backbone")
    assert [w.name for w in model.trainable_weights] == ["kernel", "bias"]  # only the classifier
    assert report.batch_norm == len(_batch_norms(model)) and "logits" not in report.frozen
    name = leaves[5].name
    report = freeze(model, f"until:{name}")
    assert report.frozen == [layer.name for layer in leaves[:6]] and leaves[6].trainable and not leaves[5].trainable
    assert freeze(model, 3).frozen == [layer.name for layer in leaves if layer.weights][:3]
    assert freeze(model, "none").frozen == [] and all(layer.trainable for layer in leaves)
    with pytest.raises(ModelError, match="has no layer 'stem_convv'; did you mean stem_conv"):
        freeze(model, "until:stem_convv")
    with pytest.raises(ModelError, match="expected backbone, until:LAYER"):
        freeze(model, "half")


def test_frozen_backbone_keeps_batch_norm_statistics_through_training():
    """The pitfall: a frozen backbone's batch norm must neither update its moving statistics nor
    normalise with batch statistics; and the same steps without freezing do change them."""
    rng = np.random.default_rng(0)
    x = (rng.random((32, *SHAPE), dtype=np.float32) * 3 + 2).astype(np.float32)  # far from the initial stats
    y = rng.integers(0, 3, 32)

    def train(model):
        model.compile(
            optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)  # 4 steps

    model = _resnet(3, seed=0)
    norms = _batch_norms(model)
    before = [(n.moving_mean.numpy().copy(), n.moving_variance.numpy().copy()) for n in norms]
    conv_before = model.get_layer("stem_conv").kernel.numpy().copy()
    head_before = model.get_layer("logits").kernel.numpy().copy()
    freeze(model, "backbone")
    inference = keras.ops.convert_to_numpy(model(x[:4], training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x[:4], training=True)), inference, rtol=1e-5, atol=1e-5)
    train(model)
    for norm, (mean, variance) in zip(norms, before):
        np.testing.assert_array_equal(norm.moving_mean.numpy(), mean)
        np.testing.assert_array_equal(norm.moving_variance.numpy(), variance)
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), conv_before)
    assert not np.allclose(model.get_layer("logits").kernel.numpy(), head_before)

    unfreeze(model)
    train(model)
    assert not np.allclose(norms[0].moving_mean.numpy(), before[0][0])
