"""Baseline: the reference networks written and trained the plain Keras way.

This is the code a reader of the reference documents would write: a ``Sequential`` model ending in
softmax, ``categorical_crossentropy`` on one-hot labels, ``model.compile(optimizer=Adam(...))`` and
``model.fit`` on float32 arrays held in memory, with every library default left alone (TensorFlow
backend, TensorFlow's own thread pools, no XLA). Nothing here is tuned: it is the yardstick that
cnnlab's speed is measured against.

It imports ``keras`` directly, not through ``cnnlab._keras``, on purpose: cnnlab's runtime set-up
(thread layout, precision) must not touch the baseline.

Networks (the reference tutorials'):
  lenet5     "Learning basic TensorFlow, Keras by examples of CNN implementation!" (tntrung):
             MNIST padded to 32x32, Adam 1e-3, batch 100
  mnist_cnn  "Classifying Images with Deep Convolutional Neural Networks" (Hsi-Pin Ma):
             MNIST 28x28, Adam 1e-4, batch 64
  vgg_bn     "Convolutional Neural Network with Keras" (Jake Tae): CIFAR-10, Adam, batch 64

Run alone:  python -m cnnlab.bench.contenders.plain_keras --model mnist_cnn --steps 50 --repeats 3
It prints one ``CNNLAB_BENCH_RESULT {...}`` line with images/s of each timed segment.
"""

from __future__ import annotations

import os
import time

import numpy as np

from cnnlab.bench.protocol import LEARNING_RATES, NUM_CLASSES, emit, load_images, parse_args, time_segments

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the tutorials' backend


def build(name: str, keras):
    """The network exactly as its reference document writes it (softmax output)."""
    layers = keras.layers
    if name == "lenet5":
        return keras.Sequential(
            [
                keras.Input((32, 32, 1)),
                layers.Conv2D(6, (5, 5), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(16, (5, 5), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(120, activation="relu"),
                layers.Dense(84, activation="relu"),
                layers.Dense(NUM_CLASSES, activation="softmax"),
            ]
        )
    if name == "mnist_cnn":
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, (5, 5), activation="relu"),
                layers.MaxPooling2D((2, 2), padding="same"),
                layers.Conv2D(64, (5, 5), activation="relu"),
                layers.MaxPooling2D((2, 2), padding="same"),
                layers.Flatten(),
                layers.Dense(1024, activation="relu"),
                layers.Dropout(0.5),
                layers.Dense(NUM_CLASSES, activation="softmax"),
            ]
        )
    if name == "vgg_bn":
        conv = dict(activation="relu", kernel_initializer="he_uniform", padding="same")
        return keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                layers.Conv2D(32, (3, 3), **conv),
                layers.BatchNormalization(),
                layers.Conv2D(32, (3, 3), **conv),
                layers.BatchNormalization(),
                layers.MaxPooling2D((2, 2)),
                layers.Dropout(0.2),
                layers.Conv2D(64, (3, 3), **conv),
                layers.BatchNormalization(),
                layers.Conv2D(64, (3, 3), **conv),
                layers.BatchNormalization(),
                layers.MaxPooling2D((2, 2)),
                layers.Dropout(0.3),
                layers.Conv2D(128, (3, 3), **conv),
                layers.BatchNormalization(),
                layers.Conv2D(128, (3, 3), **conv),
                layers.BatchNormalization(),
                layers.MaxPooling2D((2, 2)),
                layers.Dropout(0.4),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.BatchNormalization(),
                layers.Dropout(0.5),
                layers.Dense(NUM_CLASSES, activation="softmax"),
            ]
        )
    raise ValueError(name)


def _tta_options(parser) -> None:
    parser.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        help="time to accuracy instead of throughput: train epoch by epoch until the test accuracy reaches this",
    )
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="also stop after the epoch whose training time passes this (a cap for slow baselines)",
    )
    parser.add_argument("--dataset", default=None, help="for --target-accuracy: mnist, fashion_mnist, cifar10_jpg")
    parser.add_argument("--seed", type=int, default=0)


def time_to_accuracy(args, keras) -> dict:
    """Fit one epoch at a time on the whole training set; after each, the test accuracy (not timed)."""
    from cnnlab.bench.protocol import DATASETS, INPUT_SHAPES
    from cnnlab.data import load_dataset

    keras.utils.set_random_seed(args.seed)
    data = load_dataset(args.dataset or DATASETS[args.model])
    h, w, _ = INPUT_SHAPES[args.model]

    def prepare(split):
        pad = (h - split.x.shape[1]) // 2
        x = split.x.astype("float32") / 255.0
        if pad:
            x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        return x, keras.utils.to_categorical(split.y, NUM_CLASSES)

    (x, y), (x_test, y_test) = prepare(data.train), prepare(data.test)
    model = build(args.model, keras)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATES[args.model]),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    seconds, accuracies, reached = 0.0, [], None
    for _ in range(args.max_epochs):
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        seconds += time.perf_counter() - start
        accuracies.append(float(model.evaluate(x_test, y_test, verbose=0)[1]))
        if accuracies[-1] >= args.target_accuracy:
            reached = seconds
            break
        if args.max_seconds is not None and seconds >= args.max_seconds:
            break
    return {
        "contender": "plain-keras",
        "seconds_to_target": reached,
        "test_accuracy": accuracies[-1],
        "train_seconds": seconds,
        "accuracies": accuracies,
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra=_tta_options)
    if args.target_accuracy is not None:
        import keras

        emit(time_to_accuracy(args, keras))
        return
    started = time.perf_counter()
    import keras

    images = args.steps * args.batch_size
    x_uint8, labels = load_images(args.model, max(images, args.warmup_steps * args.batch_size), args.data)
    x = x_uint8.astype("float32") / 255.0  # the tutorials scale the whole set to float32 up front
    y = keras.utils.to_categorical(labels, NUM_CLASSES)

    model = build(args.model, keras)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATES[args.model]),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    warm = args.warmup_steps * args.batch_size
    model.fit(x[:warm], y[:warm], batch_size=args.batch_size, epochs=1, verbose=0)
    warmup_s = time.perf_counter() - started

    rates = time_segments(
        lambda: model.fit(x[:images], y[:images], batch_size=args.batch_size, epochs=1, verbose=0),
        images,
        args.repeats,
    )
    emit({"contender": "plain-keras", "backend": keras.backend.backend(), **rates, "warmup_s": warmup_s})


if __name__ == "__main__":
    main()
