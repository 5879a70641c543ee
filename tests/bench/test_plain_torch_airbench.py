"""The plain-PyTorch airbench94 contender: its network, whitening, augmentation and one training step."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the plain-PyTorch contender needs PyTorch")

from cnnlab.bench.contenders import plain_torch_airbench as air  # noqa: E402


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(n, 32, 32, 3)), axis=2)  # correlated neighbours, like photos
    return np.clip(128 + 20 * x, 0, 255).astype(np.uint8), rng.integers(0, 10, n)


def test_one_training_step_on_random_data_moves_the_weights_but_not_the_whitening_filters():
    torch.manual_seed(0)
    x, y = _images()
    batches = air.Batches(torch, x, y, batch_size=32, pad=2)
    trainer = air.Trainer(torch, total_steps=10, batch_size=32, widths=(8, 16, 16))
    air.fit_whitening(torch, trainer.net[0], batches.first(64))
    whitening = trainer.net[0].weight.detach().clone()
    fc = trainer.net[-2].weight.detach().clone()
    trainer.start_epoch(0)
    xb, yb = next(batches.epoch(0))
    assert xb.shape == (32, 3, 32, 32) and xb.dtype == torch.float32
    loss = trainer.train_step(xb, yb)
    assert np.isfinite(loss) and trainer.step == 1
    assert not torch.equal(trainer.net[-2].weight, fc)
    assert torch.equal(trainer.net[0].weight, whitening)
    assert trainer.net(xb).shape == (32, 10)


def test_whitening_filters_decorrelate_patches_and_come_with_their_negatives():
    x, y = _images(200)
    batches = air.Batches(torch, x, y, batch_size=32, pad=2)
    net = air.build_network(torch, widths=(8, 8, 8))
    images = batches.first(200)
    air.fit_whitening(torch, net[0], images, eps=1e-9)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, net[0].weight)  # without the bias
    flat = out.permute(0, 2, 3, 1).reshape(-1, 24).double()
    second_moment = flat[:, :12].T @ flat[:, :12] / len(flat)
    np.testing.assert_allclose(second_moment.numpy(), np.eye(12), atol=0.05)
    np.testing.assert_allclose(flat[:, 12:].numpy(), -flat[:, :12].numpy(), atol=1e-4)


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    x, y = _images(8)
    batches = air.Batches(torch, x, y, batch_size=8, pad=0)  # no translation: only the flip shows
    raw = batches.normalise(torch.from_numpy(x).permute(0, 3, 1, 2))
    mirrored_by_epoch = []
    for epoch in range(3):
        xb, _ = next(batches.epoch(epoch))
        mirrored = {}
        for image in xb:
            kept = [i for i in range(8) if torch.equal(image, raw[i])]
            flipped = [i for i in range(8) if torch.equal(image, raw[i].flip(-1))]
            assert len(kept) + len(flipped) == 1  # every image is one training image, kept or mirrored
            mirrored[(kept + flipped)[0]] = bool(flipped)
        assert sorted(mirrored) == list(range(8))  # each image once per epoch
        mirrored_by_epoch.append(mirrored)
    assert 0 < sum(mirrored_by_epoch[0].values()) < 8
    for i in range(8):
        assert mirrored_by_epoch[1][i] != mirrored_by_epoch[0][i] and mirrored_by_epoch[2][i] == mirrored_by_epoch[0][i]


def test_triangular_schedule_and_decoupled_rates():
    schedule = air.rate_schedule(100)
    assert (
        schedule(0) == pytest.approx(0.2)
        and schedule(23) == pytest.approx(1.0)
        and schedule(100) == pytest.approx(0.07)
    )
    net = air.build_network(torch, widths=(8, 8, 8))
    optimizer = air.make_optimizer(torch, net, 1024)
    norm_group, other_group = optimizer.param_groups
    assert norm_group["lr"] == pytest.approx(64 * other_group["lr"])
    # decay x rate is the same for both groups: the decay does not move with the rate
    assert norm_group["lr"] * norm_group["weight_decay"] == pytest.approx(
        other_group["lr"] * other_group["weight_decay"]
    )
    assert len(norm_group["params"]) == 6  # the six batch-norm biases; their scales do not train
