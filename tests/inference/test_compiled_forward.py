"""The server's compiled forward pass: Keras's predict step with batches padded to a few sizes."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def model():
    from cnnlab.models import create_model

    return create_model("lenet5", (32, 32, 1), num_classes=10)


@pytest.mark.parametrize("n", [1, 3, 32, 33, 300])
def test_compiled_forward_gives_the_plain_calls_logits_for_any_batch_size(model, n):
    from cnnlab.inference.forward import compiled_forward, keras_forward

    x = np.random.default_rng(n).normal(size=(n, 32, 32, 1)).astype("float32")
    compiled = compiled_forward(model)(x)
    assert compiled.shape == (n, 10)
    np.testing.assert_allclose(compiled, keras_forward(model)(x), rtol=1e-5, atol=1e-6)


def test_compiled_forward_pads_to_the_bucket_sizes(model, monkeypatch):
    from cnnlab.inference.forward import FORWARD_BUCKETS, compiled_forward

    seen = []
    original = model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch", lambda x: seen.append(len(x)) or original(x))
    forward = compiled_forward(model)
    for n in (1, 2, 3, 5, 17, 31, 200):
        forward(np.zeros((n, 32, 32, 1), np.float32))
    assert seen == [1, 2, 4, 8, 32, 32, 256]
    assert set(seen) <= set(FORWARD_BUCKETS)
