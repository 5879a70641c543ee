"""Baseline: the reference networks in a plain PyTorch training loop, every default left alone.

The same three networks as ``plain_keras.py`` written as ``nn.Sequential`` (NCHW, PyTorch's default
initialisation), ``torch.optim.Adam``, ``nn.CrossEntropyLoss`` on integer labels, batches from a
``DataLoader`` over float32 tensors held in memory, and the textbook loop
``zero_grad / forward / loss / backward / step``. No ``torch.compile``, no thread settings (PyTorch
uses one thread per physical core by default).

Run alone:  python -m cnnlab.bench.contenders.plain_torch --model mnist_cnn --steps 50 --repeats 3
"""

from __future__ import annotations

import time

from cnnlab.bench.protocol import LEARNING_RATES, NUM_CLASSES, emit, load_images, parse_args, time_segments


def build(name: str, nn):
    """The network as the reference documents describe it; the loss applies the softmax."""
    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, NUM_CLASSES),
        )
    if name == "mnist_cnn":
        # 24x24 and 8x8 maps are even, so 2x2 pooling with SAME padding equals plain 2x2 pooling.
        return nn.Sequential(
            nn.Conv2d(1, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 1024),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(1024, NUM_CLASSES),
        )
    if name == "vgg_bn":

        def block(cin, cout, drop):
            return [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(cout),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(cout),
                nn.MaxPool2d(2),
                nn.Dropout(drop),
            ]

        return nn.Sequential(
            *block(3, 32, 0.2),
            *block(32, 64, 0.3),
            *block(64, 128, 0.4),
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, 128),
            nn.ReLU(),
            nn.BatchNorm1d(128),
            nn.Dropout(0.5),
            nn.Linear(128, NUM_CLASSES),
        )
    raise ValueError(name)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    images = args.steps * args.batch_size
    x_uint8, labels = load_images(args.model, max(images, args.warmup_steps * args.batch_size), args.data)
    x = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).float() / 255.0  # NHWC uint8 -> NCHW float32
    y = torch.from_numpy(labels)

    model = build(args.model, nn)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATES[args.model])
    loss_fn = nn.CrossEntropyLoss()

    def train(count: int) -> None:
        model.train()
        for xb, yb in DataLoader(TensorDataset(x[:count], y[:count]), batch_size=args.batch_size, shuffle=True):
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()

    train(args.warmup_steps * args.batch_size)
    warmup_s = time.perf_counter() - started
    rates = time_segments(lambda: train(images), images, args.repeats)
    emit(
        {
            "contender": "plain-torch",
            "backend": f"torch {torch.__version__}",
            "threads": torch.get_num_threads(),
            **rates,
            "warmup_s": warmup_s,
        }
    )


if __name__ == "__main__":
    main()
