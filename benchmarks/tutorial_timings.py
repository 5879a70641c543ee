"""Per-epoch and per-step timings behind the tutorials' full-budget time estimates.

Run from a checkout with the data folder set (CNNLAB_DATA_DIR); prints images/s of the NumPy and
raw-op LeNet-5 levels, of vgg_bn and cifar_cnn on CIFAR-10 (JPEG copy, float32, second epoch of
3,000 images), the fast-mnist recipe's training time, and the host's CPU steal over the run:

    python benchmarks/tutorial_timings.py
"""

import time

import numpy as np

import cnnlab
from cnnlab import lowlevel, scratch
from cnnlab._keras import keras


def steal():
    f = open("/proc/stat").readline().split()[1:]
    v = list(map(int, f))
    return v[7], sum(v)


s0, t0 = steal()
mn = cnnlab.load_dataset("mnist")
x = np.pad(mn.train.x[:2000], ((0, 0), (2, 2), (2, 2), (0, 0))).astype("float32") / 255
y = mn.train.y[:2000]
net = scratch.build("lenet5", (32, 32, 1), 10, seed=0)
a = time.perf_counter()
net.fit(x[:1000], y[:1000], scratch.Adam(1e-3), epochs=1, batch_size=100)
b = time.perf_counter()
print(f"scratch lenet5: {1000 / (b - a):.0f} img/s")
net2 = lowlevel.build("lenet5", (32, 32, 1), 10)
opt = keras.optimizers.Adam(1e-3)
lowlevel.train_step(net2, opt, x[:100], y[:100])
a = time.perf_counter()
for i in range(50):
    lowlevel.train_step(net2, opt, x[i * 20 : i * 20 + 100], y[i * 20 : i * 20 + 100])
b = time.perf_counter()
print(f"lowlevel lenet5: {(b - a) / 50 * 1000:.1f} ms/step (batch 100)")
for model, ds, n in (("vgg_bn", "cifar10_jpg", 3000), ("cifar_cnn", "cifar10_jpg", 3000)):
    r = cnnlab.train(
        model=model,
        dataset=ds,
        epochs=2,
        max_train_samples=n,
        max_eval_samples=500,
        batch_size=64 if model == "vgg_bn" else 128,
        precision="float32",
        runs_dir="tutorial-timings-runs",
        verbose=False,
    )
    h = r.history
    print(
        f"{model}: epoch 2 {n / (h[1]['seconds'] - h[0]['seconds']):.0f} img/s (history seconds {[row['seconds'] for row in h]})"
    )
r = cnnlab.train(recipe="fast-mnist", runs_dir="tutorial-timings-runs", verbose=False)
print("fast-mnist full:", r.metrics["seconds"], "s, acc", r.metrics["accuracy"])
s1, t1 = steal()
print(f"host steal over the measurement: {100 * (s1 - s0) / max(1, t1 - t0):.1f}%")
