"""airbench94's parts: the data-set whitening stem, Dirac initialisation, the fast-bias batch norm."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab._keras import keras
from cnnlab.models import create_model
from cnnlab.models.airbench import PartialDirac, PatchWhitening
from cnnlab.models.layers import BatchNormalization


def _correlated_images(n=64, size=12, channels=3, seed=0) -> np.ndarray:
    """Smooth random images: neighbouring pixels and channels strongly correlated, as in photos."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, 1)) + 0.3 * rng.normal(size=(n, size, size, channels))
    x = np.cumsum(np.cumsum(x, axis=1), axis=2) / size  # integrate: low-pass in both directions
    return (x + np.linspace(0.0, 1.0, channels)).astype("float32")


def test_whitening_stem_decorrelates_the_patches_it_was_fitted_on():
    images = _correlated_images()
    layer = PatchWhitening(24, 2, eps=1e-9, use_bias=False)  # (airbench's eps 5e-4 damps faint directions)
    layer.build(images.shape)
    raw = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(1, 2)).reshape(-1, 12)
    assert np.abs(np.corrcoef(raw.T)[np.triu_indices(12, 1)]).max() > 0.9  # strongly correlated input

    layer.adapt(images)
    out = keras.ops.convert_to_numpy(layer(images)).reshape(-1, 24)
    second_moment = out[:, :12].T @ out[:, :12] / len(out)
    # unit variance and no correlation
    np.testing.assert_allclose(second_moment, np.eye(12), atol=0.02)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], rtol=1e-5, atol=1e-5)  # the negated half


def test_whitening_kernel_is_frozen_and_only_the_bias_trains():
    model = create_model("airbench", (16, 16, 3), 4, widths=(8, 8, 8))
    stem = model.get_layer("whiten")
    assert stem.kernel.path not in [v.path for v in model.trainable_variables]
    assert stem.bias.path in [v.path for v in model.trainable_variables]
    stem.adapt(_correlated_images(size=16))
    kernel = np.array(stem.kernel.numpy())
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(_correlated_images(32, 16), np.arange(32) % 4, batch_size=16, epochs=1, verbose=0)
    np.testing.assert_array_equal(stem.kernel.numpy(), kernel)


def test_whitening_needs_twice_the_patch_size_in_filters():
    layer = PatchWhitening(10, 2)
    layer.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="needs 2 x 2x2x3 = 24 filters, has 10"):
        layer.adapt(_correlated_images(4, 8))


def test_partial_dirac_passes_the_input_channels_through():
    x = _correlated_images(2, 8, channels=4)
    conv = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, kernel_initializer=PartialDirac(seed=1))
    out = keras.ops.convert_to_numpy(conv(x))
    np.testing.assert_allclose(out[..., :4], x, rtol=1e-6)  # the first 4 filters are the identity
    assert np.abs(out[..., 4:]).mean() > 1e-3  # the other 2 are random, not zero


@pytest.mark.parametrize("training", [True, False])
def test_offset_scale_multiplies_the_offset_and_its_gradient(training):
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, size=(8, 4, 4, 3)).astype("float32"))
    scaled = BatchNormalization(scale=False, offset_scale=8.0)
    plain = BatchNormalization(scale=False)
    for layer, beta in ((scaled, [0.1, -0.2, 0.3]), (plain, [0.8, -1.6, 2.4])):
        layer.build(x.shape)
        layer.beta.assign(beta)
    grads = []
    for layer in (scaled, plain):
        with tf.GradientTape() as tape:
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.range(3, dtype="float32"))
        grads.append(tape.gradient(loss, layer.beta))
        if layer is scaled:
            y_scaled = y
    np.testing.assert_allclose(y_scaled, y, atol=1e-5)  # the same output for beta' = beta / 8
    np.testing.assert_allclose(grads[0], 8.0 * np.asarray(grads[1]), rtol=1e-5)  # and 8x the gradient


def test_airbench_saves_and_loads_with_its_whitening(tmp_path):
    model = create_model("airbench", (16, 16, 3), 5, widths=(8, 8, 8))
    model.get_layer("whiten").adapt(_correlated_images(size=16))
    model.save(tmp_path / "airbench.keras")
    loaded = keras.models.load_model(tmp_path / "airbench.keras")
    x = _correlated_images(3, 16, seed=2)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)
    assert not loaded.get_layer("whiten").kernel.trainable


def test_whitening_kernel_stays_fixed_through_freeze_and_unfreeze(tmp_path):
    """Keras's ``trainable`` setter sets every variable of a layer; unfreezing the stem must not
    hand the whitening kernel to the optimizer (``--freeze backbone --unfreeze-at`` once failed
    on airbench with "Unknown variable: whiten/kernel")."""
    from cnnlab.data import Dataset, Split
    from cnnlab.models.transfer import freeze, unfreeze
    from cnnlab.training import train

    model = create_model("airbench", (16, 16, 3), 4, widths=(8, 8, 8))
    stem = model.get_layer("whiten")
    freeze(model, "backbone")
    assert not stem.trainable and not stem.bias.trainable
    unfreeze(model)
    assert stem.trainable and stem.bias.trainable and not stem.kernel.trainable
    if keras.backend.backend() == "jax":
        return  # --freeze is refused on JAX
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8)
    data = Dataset("arrays", Split(x, np.arange(32) % 4), None, None, list("abcd"))
    run = train(
        "airbench",
        data,
        model_options={"widths": [8, 8, 8]},
        epochs=2,
        batch_size=16,
        freeze="backbone",
        unfreeze_at=2,
        precision="float32",
        runs_dir=tmp_path,
        name="unfrozen",
        verbose=False,
    )
    assert "epoch 2: 13 frozen layers now train" in (tmp_path / "unfrozen" / "train.log").read_text()
    adapted = PatchWhitening(24, 2)
    adapted.build((None, 16, 16, 3))
    adapted.adapt(run.preprocessing(x))  # what cnnlab train set the kernel to, before the first step
    np.testing.assert_allclose(
        run.model().get_layer("whiten").kernel.numpy(), adapted.kernel.numpy(), rtol=1e-5, atol=1e-6
    )


def test_cnnlab_train_whitens_from_the_training_images_before_the_first_step(tmp_path, monkeypatch):
    from tests.conftest import require_data

    data = require_data("mnist", "train-images-idx3-ubyte.gz").parents[1]
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data))
    from cnnlab.training import train

    run = train(
        model="airbench",
        dataset="mnist",
        model_options={"widths": [8, 8, 8]},
        normalize="standardize",
        max_train_samples=300,
        max_eval_samples=100,
        batch_size=100,
        steps=2,
        precision="float32",
        runs_dir=tmp_path,
        name="air",
        verbose=False,
    )
    expected = PatchWhitening(8, 2)
    expected.build((None, 28, 28, 1))
    expected.adapt(run.preprocessing(run.dataset().split("train").x[:300]))
    np.testing.assert_allclose(
        run.model().get_layer("whiten").kernel.numpy(), expected.kernel.numpy(), rtol=1e-5, atol=1e-6
    )


def test_batch_norm_keeps_sixty_percent_of_its_running_statistics_as_airbench_does():
    # airbench94 passes momentum=1 - 0.6 to PyTorch's BatchNorm2d, whose momentum weighs the new
    # batch: running = 0.6 x running + 0.4 x batch. Keras's momentum weighs the running value.
    model = create_model("airbench", (16, 16, 3), 4, widths=(8, 8, 8))
    norms = [layer for layer in model.layers if isinstance(layer, BatchNormalization)]
    assert len(norms) == 6 and {layer.momentum for layer in norms} == {0.6}

    layer = norms[0]
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4, 4, 8)).astype("float32")
    layer.moving_mean.assign(np.ones(8, "float32"))
    layer(x, training=True)
    expected = 0.6 * 1.0 + 0.4 * x.mean(axis=(0, 1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), expected, rtol=1e-5)
