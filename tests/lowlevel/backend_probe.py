"""Run level 2's LeNet-5 on whatever backend ``KERAS_BACKEND`` names (a subprocess of the tests).

    python backend_probe.py CHECKPOINT BATCH.npz OUT.npz

Loads the checkpoint, computes logits for the batch, takes three plain-SGD steps (dropout off)
and one in training mode, round-trips a checkpoint, and writes logits, losses and weights.
(No Keras optimizer here: on JAX, Keras compiles Adam's update on first use, which costs more
than the rest of the probe; level 2 only calls its ``apply``.)
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from cnnlab import lowlevel
from cnnlab._keras import keras


def main(checkpoint: str, batch: str, out: str) -> None:
    with np.load(batch) as data:
        x, y = data["x"], data["y"]
    net = lowlevel.build("lenet5", (32, 32, 1), 10, seed=123)
    lowlevel.load_checkpoint(net, checkpoint)
    logits = lowlevel.predict_logits(net, x)
    optimizer = lowlevel.SGD(0.1)
    losses = [lowlevel.train_step(net, optimizer, x, y, training=False)[0] for _ in range(3)]
    sgd_weights = net.get_weights()
    training_loss, _ = lowlevel.train_step(net, optimizer, x, y, training=True, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = lowlevel.save_checkpoint(net, Path(folder) / "probe.npz", optimizer)
        copy = lowlevel.build("lenet5", (32, 32, 1), 10, seed=5)
        lowlevel.load_checkpoint(copy, path, lowlevel.SGD(0.1))
        round_trip = all(np.array_equal(a, b) for a, b in zip(net.get_weights(), copy.get_weights()))
    np.savez(
        out,
        backend=keras.backend.backend(),
        logits=logits,
        losses=np.array(losses),
        training_loss=training_loss,
        round_trip=round_trip,
        **{f"w{i}": w for i, w in enumerate(sgd_weights)},
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
