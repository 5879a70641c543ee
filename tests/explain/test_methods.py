"""Attribution methods checked against what must be true: independent computation, completeness,
the model-randomisation sanity check, and a dataset whose evidence is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from cnnlab.explain import methods
from cnnlab.explain.api import Explainer
from tests.explain.patches import CLASSES, PATCH, patch_images


@pytest.fixture(scope="module")
def patch_test():
    """Test images of the patch dataset, their labels and their bright squares' corners."""
    return patch_images(8, seed=3)


def test_default_layer_is_last_spatial_convolution(patch_model, mnist_run):
    assert methods.target_layer(patch_model).name == "conv3"
    lenet = mnist_run.model()
    assert methods.target_layer(lenet).name == "conv2"
    assert methods.target_layer(lenet, "conv1").name == "conv1"


def test_unknown_layer_names_the_valid_ones(mnist_run):
    from cnnlab.errors import ModelError

    with pytest.raises(ModelError) as info:
        methods.target_layer(mnist_run.model(), "dense_9")
    message = str(info.value)
    assert message.startswith("--layer: lenet5 has no layer 'dense_9'") and "conv1" in message and "conv2" in message
    assert "\n" not in message


def test_grad_cam_equals_an_independent_gradient_tape_computation(patch_model, patch_preprocessing, patch_test):
    import tensorflow as tf

    from cnnlab._keras import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference computation is written with TensorFlow's GradientTape")
    images, targets, _ = patch_test
    x = patch_preprocessing(images)
    layer = methods.target_layer(patch_model)
    probe = keras.Model(patch_model.inputs, [layer.output, patch_model.output])
    inputs = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        activations, out = probe(inputs, training=False)
        score = tf.reduce_sum(tf.gather(out, targets, axis=1, batch_dims=1))
    grads = tape.gradient(score, activations).numpy()
    weights = grads.mean(axis=(1, 2))
    expected = np.maximum((activations.numpy() * weights[:, None, None, :]).sum(-1), 0)

    got = methods.grad_cam(patch_model, x, targets, layer, upsampled=False)
    assert got.shape == expected.shape
    assert expected.max() > 0
    np.testing.assert_allclose(got, expected, atol=1e-5 * expected.max(), rtol=1e-5)


@pytest.mark.parametrize("baseline", ["black", "blurred", "noise"])
def test_integrated_gradients_completeness(mnist_run, baseline):
    """Attributions sum to f(x) - f(baseline) within 1% at 128 steps (Sundararajan et al. 2017, prop. 1)."""
    model = mnist_run.model()
    test = mnist_run.dataset().test
    images = test.x[:3]
    explainer = Explainer(model, mnist_run.preprocessing, mnist_run.class_names)
    targets = methods.logits(model, explainer.network_input(images)).argmax(1)
    x, base = explainer.network_input(images), explainer.baseline(images, baseline)
    attributions = methods.integrated_gradients(model, x, targets, base, steps=128)
    difference = methods.target_scores(model, x, targets) - methods.target_scores(model, base, targets)
    assert np.all(np.abs(difference) > 0.5)  # a meaningful gap to attribute
    sums = attributions.reshape(len(x), -1).sum(axis=1)
    np.testing.assert_allclose(sums, difference, rtol=0.01)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "gradcam"])
def test_randomised_weights_change_the_maps(mnist_run, method):
    """Adebayo et al. 2018's model-randomisation test: re-initialised weights, different maps."""
    from cnnlab._keras import keras

    model = mnist_run.model()
    keras.utils.set_random_seed(1)
    random_model = keras.models.clone_model(model)  # same architecture, freshly initialised weights
    images = mnist_run.dataset().test.x[:6]
    trained = Explainer(model, mnist_run.preprocessing, mnist_run.class_names)
    randomised = Explainer(random_model, mnist_run.preprocessing, mnist_run.class_names)
    targets = methods.logits(model, trained.network_input(images)).argmax(1)
    options = {"samples": 10} if method == "smoothgrad" else {}
    if method == "saliency":
        # The paper ranks both the absolute and the signed maps; for the plain gradient the absolute
        # map of a small MNIST network is dominated by the digit's outline whatever the weights
        # (about 0.58 here after 1 to 3 epochs), so the signed gradient is what tells the weights apart.
        a = methods.input_gradients(model, trained.network_input(images), targets)
        b = methods.input_gradients(random_model, randomised.network_input(images), targets)
    else:
        a = trained.maps(images, method, targets, **options)
        b = randomised.maps(images, method, targets, **options)
    correlations = [spearmanr(m1.ravel(), m2.ravel()).statistic for m1, m2 in zip(a, b)]
    assert np.nanmean(correlations) < 0.5, correlations


@pytest.mark.parametrize("method", ["occlusion", "gradcam"])
def test_maximum_inside_the_bright_patch(patch_model, patch_preprocessing, patch_test, method):
    images, labels, corners = patch_test
    explainer = Explainer(patch_model, patch_preprocessing, CLASSES)
    maps = explainer.maps(images, method, labels)
    for heat, (top, left) in zip(maps, corners):
        row, col = np.unravel_index(np.argmax(heat), heat.shape)
        assert top <= row < top + PATCH and left <= col < left + PATCH, (method, (row, col), (top, left))


def test_every_method_gives_finite_maps_of_the_image_size(mnist_run):
    """Padded inputs (LeNet-5 reads 28x28 digits padded to 32x32): maps come back at 28x28."""
    from cnnlab.explain import METHODS

    images = mnist_run.dataset().test.x[:2]
    explainer = Explainer(mnist_run.model(), mnist_run.preprocessing, mnist_run.class_names)
    results = explainer.explain(images, ["a", "b"], METHODS, steps=16, samples=4)
    for result in results:
        assert set(result.maps) == set(METHODS)
        for name, heat in result.maps.items():
            assert heat.shape == (28, 28), name
            assert np.isfinite(heat).all() and heat.max() > 0, name
        assert result.attributions.shape == (28, 28, 1)
