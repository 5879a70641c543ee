"""Baseline: the reference networks in plain JAX, one ``jax.jit`` training step per batch.

What a JAX user would write without Keras: the network as a pure function of a parameter tree
(``jax.lax.conv_general_dilated`` in NHWC, ``jax.lax.reduce_window`` for max pooling), Adam written
out over the tree (Kingma & Ba 2015, PyTorch's and Keras's defaults), softmax cross-entropy on
integer labels, and the textbook loop: shuffle, slice a batch, call the jitted step (its parameter
and optimizer buffers donated), read the loss back. PyTorch's default initialisation (uniform in
``+-1/sqrt(fan_in)``); throughput does not depend on it. No thread settings: XLA's CPU client
uses every core it finds.

Run alone:  python -m cnnlab.bench.contenders.plain_jax --model lenet5 --steps 50 --repeats 3
"""

from __future__ import annotations

import time

from cnnlab.bench.protocol import INPUT_SHAPES, LEARNING_RATES, NUM_CLASSES, emit, load_images, parse_args


def layers(name: str) -> list[tuple]:
    """The network as a list of layers: ``("conv", cin, cout, k, padding)``, ``("pool",)``,
    ``("relu",)``, ``("bn", channels)``, ``("dropout", rate)``, ``("flatten",)``, ``("dense", fan_in, units)``."""
    if name == "lenet5":
        return [
            ("conv", 1, 6, 5, "VALID"),
            ("relu",),
            ("pool",),
            ("conv", 6, 16, 5, "VALID"),
            ("relu",),
            ("pool",),
            ("flatten",),
            ("dense", 16 * 5 * 5, 120),
            ("relu",),
            ("dense", 120, 84),
            ("relu",),
            ("dense", 84, NUM_CLASSES),
        ]
    if name == "mnist_cnn":
        return [
            ("conv", 1, 32, 5, "VALID"),
            ("relu",),
            ("pool",),
            ("conv", 32, 64, 5, "VALID"),
            ("relu",),
            ("pool",),
            ("flatten",),
            ("dense", 64 * 4 * 4, 1024),
            ("relu",),
            ("dropout", 0.5),
            ("dense", 1024, NUM_CLASSES),
        ]
    if name == "vgg_bn":
        out: list[tuple] = []
        for cin, cout, drop in ((3, 32, 0.2), (32, 64, 0.3), (64, 128, 0.4)):
            out += [("conv", cin, cout, 3, "SAME"), ("relu",), ("bn", cout)]
            out += [("conv", cout, cout, 3, "SAME"), ("relu",), ("bn", cout), ("pool",), ("dropout", drop)]
        return out + [
            ("flatten",),
            ("dense", 128 * 4 * 4, 128),
            ("relu",),
            ("bn", 128),
            ("dropout", 0.5),
            ("dense", 128, NUM_CLASSES),
        ]
    raise ValueError(name)


def init(spec: list[tuple], key, jax, jnp) -> tuple[list, list]:
    """Trainable parameters and batch-norm running statistics, one entry per layer (None if it has none)."""
    params, stats = [], []
    for layer in spec:
        kind = layer[0]
        if kind in ("conv", "dense"):
            key, k1, k2 = jax.random.split(key, 3)
            if kind == "conv":
                _, cin, cout, k, _ = layer
                shape, fan_in = (k, k, cin, cout), k * k * cin
            else:
                _, fan_in, cout = layer
                shape = (fan_in, cout)
            bound = fan_in**-0.5
            params.append(
                {
                    "w": jax.random.uniform(k1, shape, minval=-bound, maxval=bound),
                    "b": jax.random.uniform(k2, (cout,), minval=-bound, maxval=bound),
                }
            )
            stats.append(None)
        elif kind == "bn":
            params.append({"gamma": jnp.ones(layer[1]), "beta": jnp.zeros(layer[1])})
            stats.append({"mean": jnp.zeros(layer[1]), "var": jnp.ones(layer[1])})
        else:
            params.append(None)
            stats.append(None)
    return params, stats


def forward(spec, params, stats, x, key, jax, jnp):
    """Logits and the updated running statistics, in training mode (dropout on, batch statistics)."""
    new_stats = []
    for layer, p, s in zip(spec, params, stats):
        kind = layer[0]
        if kind == "conv":
            x = jax.lax.conv_general_dilated(x, p["w"], (1, 1), layer[4], dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = x + p["b"]
        elif kind == "dense":
            x = x @ p["w"] + p["b"]
        elif kind == "relu":
            x = jax.nn.relu(x)
        elif kind == "pool":
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "dropout":
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1.0 - layer[1], x.shape)
            x = jnp.where(keep, x / (1.0 - layer[1]), 0.0)
        elif kind == "bn":
            axes = tuple(range(x.ndim - 1))
            mean, var = x.mean(axes), x.var(axes)
            x = (x - mean) * jax.lax.rsqrt(var + 1e-5) * p["gamma"] + p["beta"]
            s = {"mean": 0.9 * s["mean"] + 0.1 * mean, "var": 0.9 * s["var"] + 0.1 * var}
        new_stats.append(s)
    return x, new_stats


def make_step(spec, lr: float, jax, jnp):
    """The jitted training step: (params, stats, adam state, x, y, key) -> updated, loss."""
    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_fn(params, stats, x, y, key):
        logits, new_stats = forward(spec, params, stats, x, key, jax, jnp)
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, y[:, None], axis=1).mean(), new_stats

    def step(params, stats, opt, x, y, key):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y, key)
        t = opt["t"] + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, opt["m"], grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, opt["v"], grads)
        rate = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        params = jax.tree_util.tree_map(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + eps), params, m, v)
        return params, stats, {"t": t, "m": m, "v": v}, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np

    images = args.steps * args.batch_size
    x_uint8, labels = load_images(args.model, max(images, args.warmup_steps * args.batch_size), args.data)
    x = x_uint8.astype(np.float32) / 255.0
    assert x.shape[1:] == INPUT_SHAPES[args.model]
    spec = layers(args.model)
    key = jax.random.PRNGKey(0)
    params, stats = init(spec, key, jax, jnp)

    def zeros():  # a fresh buffer per moment: donated buffers must be distinct
        return jax.tree_util.tree_map(jnp.zeros_like, params)

    state = {"params": params, "stats": stats, "opt": {"t": jnp.zeros(()), "m": zeros(), "v": zeros()}}
    step = make_step(spec, LEARNING_RATES[args.model], jax, jnp)
    rng = np.random.default_rng(0)

    def train(count: int) -> None:
        nonlocal key
        order = rng.permutation(count)
        for start in range(0, count - args.batch_size + 1, args.batch_size):
            rows = order[start : start + args.batch_size]
            key, sub = jax.random.split(key)
            p, s, o, loss = step(state["params"], state["stats"], state["opt"], x[rows], labels[rows], sub)
            state.update(params=p, stats=s, opt=o)
            float(loss)  # as a training loop that logs every step would

    train(args.warmup_steps * args.batch_size)
    warmup_s = time.perf_counter() - started
    from cnnlab.bench.protocol import time_segments

    rates = time_segments(lambda: train(images), images, args.repeats)
    emit({"contender": "plain-jax", "backend": f"jax {jax.__version__}", **rates, "warmup_s": warmup_s})


if __name__ == "__main__":
    main()
