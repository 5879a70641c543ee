"""Contender: airbench94 in plain PyTorch on the CPU, the network and recipe as its paper describes them.

Keller Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (arXiv:2404.00498), written
here for a CPU in the plain PyTorch way a user would write it: ``nn.Sequential``, NCHW tensors in
channels-last memory, ``torch.optim.SGD``, the textbook ``zero_grad / forward / backward / step``
loop, no ``torch.compile``, float32 (the paper trains in float16 on a GPU), PyTorch's default
threads (one per core). What the paper's recipe has, all of it here:

- network: a 2x2 convolution of 24 filters set from the data (the eigenvectors of the covariance of
  2x2 patches of 5,000 training images, divided by sqrt(eigenvalue + 5e-4), and their negatives;
  never trained, its bias trained for the first 3 epochs only), GELU, three groups of
  ``conv 3x3 - max-pool 2 - BN - GELU - conv 3x3 - BN - GELU`` at widths 64, 256, 256 (convolutions
  without bias, the first ``in_channels`` filters initialised to the identity; batch norms without
  a learned scale, eps 1e-12, keeping 60% of the running statistics per step), max-pool 3, a
  linear layer without bias, logits x 1/9;
- training: batch 1024, label smoothing 0.2, a summed loss, SGD with Nesterov momentum 0.85, the
  rate 11.5 per 1024 examples and weight decay 0.0153 per 1024 examples in the paper's decoupled
  form (both divided by ``1024 x (1 + 1 / (1 - momentum))``; decay applied as ``wd / lr`` so it does
  not move with the rate), batch-norm biases at 64x the rate, a triangular rate schedule
  (0.2 -> 1 at 23% of the steps -> 0.07), 9.9 epochs;
- lookahead: from epoch 3 (counting from 0), every 5 steps, the weights and batch-norm statistics
  move to an exponential average (decay ``0.95**5 x (step / total)**3``) which is copied back into
  the network, and the network is reset to the average at the end of every epoch;
- data: CIFAR-10's per-channel mean and deviation, 2-pixel translations (reflection padding) and
  the alternating flip (each image mirrored every other epoch from a coin drawn once per image);
- evaluation: test accuracy after every epoch (outside the clock) and, at the end, the six-view
  test-time augmentation (the image, its mirror, both shifted one pixel up-left and down-right).

Two ways to run it (``cnnlab bench`` runs both: the throughput row of ``--model airbench`` and
the time-to-accuracy task of CIFAR-10 at 90%):

    python -m cnnlab.bench.contenders.plain_torch_airbench --steps 2 --repeats 3                # images/s, synthetic data
    python -m cnnlab.bench.contenders.plain_torch_airbench --epochs 9.9 --target 0.90 --data real   # time to 90%, JPEG copy

Both follow the contender protocol of ``cnnlab bench``: one ``CNNLAB_BENCH_RESULT`` line, with
images/s of timed segments after warm-up steps, or the seconds to the target, the final test
accuracy and the training seconds. ``--data real`` reads CIFAR-10 (JPEG copy) through
``cnnlab.data``. Training time counts the whitening fit and the training steps, not the evaluation.

It is a module of the package, not a script beside it, so ``cnnlab bench`` finds it wherever
cnnlab is installed; it imports only NumPy and PyTorch (and ``cnnlab.data`` for real data).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
HYPER = {
    "batch_size": 1024,
    "epochs": 9.9,
    "lr": 11.5,  # per 1024 examples, decoupled from the momentum
    "momentum": 0.85,
    "weight_decay": 0.0153,  # per 1024 examples, decoupled from the rate
    "bias_scaler": 64.0,
    "label_smoothing": 0.2,
    "whiten_bias_epochs": 3,
    "lookahead_start_epoch": 3,
    "lookahead_every": 5,
    "lookahead_decay": 0.95,
    "lookahead_power": 3.0,
    "widths": (64, 256, 256),
    "bn_keep": 0.6,  # share of the running statistics kept per step
    "logit_scale": 1 / 9,
    "translate": 2,
    "whiten_images": 5000,
}


# ---------------------------------------------------------------- network
def build_network(torch, widths=HYPER["widths"], num_classes: int = 10, bn_keep: float = HYPER["bn_keep"]):
    """airbench94 as an ``nn.Sequential``; index 0 is the whitening convolution."""
    nn = torch.nn

    class Scale(nn.Module):
        def __init__(self, factor: float):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    def conv(cin: int, cout: int):
        layer = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        with torch.no_grad():  # identity on the first min(cin, cout) filters: the group starts as a pass-through
            n = min(cin, cout)
            layer.weight[:n] = 0.0
            layer.weight[torch.arange(n), torch.arange(n), 1, 1] = 1.0
        return layer

    def norm(channels: int):
        # PyTorch's momentum weighs the new batch: keeping 60% of the running value is momentum 0.4.
        layer = nn.BatchNorm2d(channels, eps=1e-12, momentum=1.0 - bn_keep)
        layer.weight.requires_grad_(False)
        return layer

    def group(cin: int, cout: int):
        return nn.Sequential(
            conv(cin, cout), nn.MaxPool2d(2), norm(cout), nn.GELU(), conv(cout, cout), norm(cout), nn.GELU()
        )

    whiten = nn.Conv2d(3, 24, 2, bias=True)
    whiten.weight.requires_grad_(False)
    with torch.no_grad():
        whiten.bias.zero_()
    return nn.Sequential(
        whiten,
        nn.GELU(),
        group(24, widths[0]),
        group(widths[0], widths[1]),
        group(widths[1], widths[2]),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(widths[2], num_classes, bias=False),
        Scale(HYPER["logit_scale"]),
    )


def fit_whitening(torch, layer, images, eps: float = 5e-4) -> None:
    """Set ``layer``'s 2x2 filters from ``images`` (N, 3, H, W, normalised): whitened patches and their negatives."""
    k = layer.kernel_size[0]
    patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * k * k)  # (C, kh, kw) order
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
    order = torch.argsort(eigenvalues, descending=True)
    filters = (eigenvectors[:, order] / torch.sqrt(eigenvalues[order] + eps)).T.float()
    filters = filters.reshape(-1, images.shape[1], k, k)
    with torch.no_grad():
        layer.weight.copy_(torch.cat([filters, -filters]))


class Lookahead:
    """The exponential average of the float state (weights and BN statistics), copied back into the net."""

    def __init__(self, net):
        self.net = net
        self.average = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    def pull(self, decay: float) -> None:
        state = self.net.state_dict()
        for name, average in self.average.items():
            average.mul_(decay).add_(state[name].detach(), alpha=1.0 - decay)
            state[name].copy_(average)


# ---------------------------------------------------------------- data
class Batches:
    """Epochs of shuffled batches with 2-pixel reflected translations and the alternating flip.

    Holds the training set once, as uint8 NCHW padded by reflection; each batch is cropped and
    mirrored by one gather, then normalised.
    """

    def __init__(self, torch, x_uint8: np.ndarray, y: np.ndarray, batch_size: int, pad: int, seed: int = 0):
        self.torch, self.batch_size, self.pad = torch, batch_size, pad
        padded = np.pad(x_uint8, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")  # edge not repeated
        self.padded = torch.from_numpy(padded).permute(0, 3, 1, 2)  # uint8 NCHW view
        self.size = x_uint8.shape[2]
        self.labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.generator = torch.Generator().manual_seed(seed)
        self.coin = torch.rand(len(self.labels), generator=self.generator) < 0.5  # mirrored in even epochs
        self.mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size  # the last partial batch is dropped

    def normalise(self, x_uint8_nchw):
        return ((x_uint8_nchw.float() - self.mean) / self.std).contiguous(memory_format=self.torch.channels_last)

    def first(self, count: int):
        """The first ``count`` training images, unaugmented and normalised (what the whitening is fitted on)."""
        p = self.pad
        return self.normalise(self.padded[:count, :, p : p + self.size, p : p + self.size])

    def epoch(self, epoch: int):
        torch, size, pad = self.torch, self.size, self.pad
        order = torch.randperm(len(self.labels), generator=self.generator)
        mirrored = self.coin ^ bool(epoch % 2)
        shifts = torch.randint(-pad, pad + 1, (len(self.labels), 2), generator=self.generator)
        ramp = torch.arange(size)
        for b in range(len(self)):
            rows_ = order[b * self.batch_size : (b + 1) * self.batch_size]
            n = len(rows_)
            r = pad + shifts[rows_, 0, None] + ramp  # (n, size) source rows
            c = pad + shifts[rows_, 1, None] + ramp
            c = torch.where(mirrored[rows_, None], c.flip(1), c)
            x = self.padded[
                rows_.view(n, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), r.view(n, 1, size, 1), c.view(n, 1, 1, size)
            ]
            yield self.normalise(x), self.labels[rows_]


# ---------------------------------------------------------------- training
def make_optimizer(torch, net, batch_size: int):
    """SGD-Nesterov with airbench's decoupled rate and decay, BN biases at ``bias_scaler`` x the rate."""
    momentum = HYPER["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = HYPER["lr"] / kilostep_scale
    wd = HYPER["weight_decay"] * batch_size / kilostep_scale
    lr_bias = lr * HYPER["bias_scaler"]
    norm_ids = {id(p) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    norm_biases = [p for p in trainable if id(p) in norm_ids]
    others = [p for p in trainable if id(p) not in norm_ids]
    # The whitening bias is in `others` (trainable when the optimizer is made); once it is frozen
    # it has no gradient, and SGD skips it: no decay, no momentum, as in the paper.
    groups = [
        {"params": norm_biases, "lr": lr_bias, "weight_decay": wd / lr_bias},
        {"params": others, "lr": lr, "weight_decay": wd / lr},
    ]
    return torch.optim.SGD(groups, momentum=momentum, nesterov=True)


def rate_schedule(total_steps: int):
    """The multiplier of the rate after ``step`` steps: 0.2 -> 1 (at 23%) -> 0.07, linear."""
    peak = int(0.23 * total_steps)
    return lambda step: float(np.interp(step, [0, peak, total_steps], [0.2, 1.0, 0.07]))


class Trainer:
    """The network, optimizer, schedule and lookahead for a run of ``total_steps`` steps."""

    def __init__(self, torch, total_steps: int, batch_size: int, widths=HYPER["widths"]):
        self.torch, self.total_steps = torch, total_steps
        self.net = build_network(torch, widths).to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(torch, self.net, batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, rate_schedule(total_steps))
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=HYPER["label_smoothing"], reduction="sum")
        self.step = self.epoch = 0
        self.lookahead = None

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.net[0].bias.requires_grad_(epoch < HYPER["whiten_bias_epochs"])
        self.net.train()

    def train_step(self, x, y) -> float:
        loss = self.loss_fn(self.net(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.step < self.total_steps:  # LambdaLR would run past the end of the schedule otherwise
            self.scheduler.step()
        self.step += 1
        every = HYPER["lookahead_every"]
        if self.epoch >= HYPER["lookahead_start_epoch"] and self.step % every == 0:
            if self.lookahead is None:
                self.lookahead = Lookahead(self.net)
            else:
                frac = min(self.step / self.total_steps, 1.0)
                self.lookahead.pull(HYPER["lookahead_decay"] ** every * frac ** HYPER["lookahead_power"])
        return float(loss.detach())

    def end_epoch(self) -> None:
        if self.lookahead is not None:
            self.lookahead.pull(1.0)  # back to the average


def predict(torch, net, images, tta: bool, batch: int = 2000):
    """Logits for normalised NCHW ``images``; with ``tta`` the six-view average airbench evaluates with."""
    net.eval()
    out = []
    with torch.no_grad():
        for x in images.split(batch):
            logits = 0.5 * (net(x) + net(x.flip(-1))) if tta else net(x)
            if tta:
                padded = torch.nn.functional.pad(x, (1,) * 4, mode="reflect")
                h, w = x.shape[-2:]
                shifted = [padded[:, :, :h, :w], padded[:, :, 2:, 2:]]
                moved = sum(0.5 * (net(s) + net(s.flip(-1))) for s in shifted) / 2
                logits = 0.5 * logits + 0.5 * moved
            out.append(logits)
    return torch.cat(out)


def accuracy(torch, net, images, labels, tta: bool = False) -> float:
    return float((predict(torch, net, images, tta).argmax(1) == labels).float().mean())


# ---------------------------------------------------------------- the two modes
def load(source: str, count: int):
    """Train and test uint8 NHWC images with labels: the JPEG copy of CIFAR-10, or random ones."""
    if source == "real":
        from cnnlab.data import load_dataset

        data = load_dataset("cifar10_jpg")
        return data.train.x, data.train.y, data.test.x, data.test.y
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (count + 1000, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, count + 1000)
    return x[:count], y[:count], x[count:], y[count:]


def throughput(args, torch) -> None:
    from cnnlab.bench.protocol import emit, time_segments

    started = time.perf_counter()
    per_segment = args.steps * args.batch_size
    x, y, _, _ = load(args.data, max(per_segment, args.warmup_steps * args.batch_size, args.batch_size))
    batches = Batches(torch, x, y, args.batch_size, HYPER["translate"], seed=args.seed)
    total = args.warmup_steps + args.steps * args.repeats
    trainer = Trainer(torch, total_steps=total, batch_size=args.batch_size)
    fit_whitening(torch, trainer.net[0], batches.first(HYPER["whiten_images"]))
    state = {"epoch": 0, "it": None}
    # Steps run through the epochs from epoch 3 on, so the lookahead and a frozen whitening bias are in the timing.
    trainer.start_epoch(HYPER["lookahead_start_epoch"])

    def run(steps: int) -> None:
        for _ in range(steps):
            batch = next(state["it"], None) if state["it"] is not None else None
            if batch is None:
                state["epoch"] += 1
                state["it"] = batches.epoch(state["epoch"])
                batch = next(state["it"])
            trainer.train_step(*batch)

    run(args.warmup_steps)
    warmup_s = time.perf_counter() - started
    rates = time_segments(lambda: run(args.steps), per_segment, args.repeats)
    print(
        f"plain PyTorch airbench94, batch {args.batch_size}, {torch.get_num_threads()} threads: "
        + ", ".join(f"{r:,.1f}" for r in rates["images_per_s"])
        + " images/s"
    )
    emit(
        {
            "contender": "plain-torch-airbench",
            "backend": f"torch {torch.__version__}",
            "threads": torch.get_num_threads(),
            **rates,
            "warmup_s": warmup_s,
        }
    )


def time_to_accuracy(args, torch) -> None:
    x, y, x_test, y_test = load(args.data, 4 * args.batch_size)
    batches = Batches(torch, x, y, args.batch_size, HYPER["translate"], seed=args.seed)
    test_images = batches.normalise(torch.from_numpy(np.ascontiguousarray(x_test)).permute(0, 3, 1, 2))
    test_labels = torch.from_numpy(np.asarray(y_test, dtype=np.int64))
    total = math.ceil(len(batches) * args.epochs)
    trainer = Trainer(torch, total_steps=total, batch_size=args.batch_size)
    clock = time.perf_counter()
    fit_whitening(torch, trainer.net[0], batches.first(HYPER["whiten_images"]))
    seconds, reached = time.perf_counter() - clock, None
    for epoch in range(math.ceil(args.epochs)):
        clock = time.perf_counter()
        trainer.start_epoch(epoch)
        for xb, yb in batches.epoch(epoch):
            loss = trainer.train_step(xb, yb)
            if trainer.step >= total:
                break
        trainer.end_epoch()
        seconds += time.perf_counter() - clock
        acc = accuracy(torch, trainer.net, test_images, test_labels)
        if reached is None and args.target and acc >= args.target:
            reached = seconds
        images_per_s = trainer.step * args.batch_size / seconds
        print(
            f"epoch {epoch + 1}: loss {loss / args.batch_size:.4f}  test accuracy {acc:.4f}  "
            f"training {seconds:.1f} s  ({images_per_s:,.1f} images/s)",
            flush=True,
        )
    tta = accuracy(torch, trainer.net, test_images, test_labels, tta=True)
    print(f"final test accuracy with six-view TTA: {tta:.4f}; training {seconds:.1f} s")
    if reached is None and args.target and tta >= args.target:
        reached = seconds  # like a cnnlab recipe without a validation set: the whole run, scored with TTA
    if args.target:
        when = f"{reached:.1f} s" if reached is not None else "not reached"
        print(f"time to {args.target:.0%}: {when}")
    from cnnlab.bench.protocol import emit

    emit({"seconds_to_target": reached, "test_accuracy": tta, "train_seconds": seconds})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("airbench",), default="airbench", help="the one network this contender has")
    parser.add_argument("--data", choices=("synthetic", "real"), default="synthetic")
    parser.add_argument("--batch-size", type=int, default=HYPER["batch_size"])
    parser.add_argument(
        "--epochs", type=float, default=0.0, help="train this many epochs and report accuracy (0: throughput mode)"
    )
    parser.add_argument("--target", type=float, default=0.0, help="report the training time to this test accuracy")
    parser.add_argument("--steps", type=int, default=10, help="throughput: steps per timed segment")
    parser.add_argument("--repeats", type=int, default=3, help="throughput: timed segments")
    parser.add_argument("--warmup-steps", type=int, default=3, help="throughput: untimed steps first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(args.seed)
    (time_to_accuracy if args.epochs else throughput)(args, torch)


if __name__ == "__main__":
    main()
