"""Where a training step's time goes, and what cnnlab's kernels change: side by side, one process.

    python benchmarks/kernels.py                 # all sections
    python benchmarks/kernels.py --only bn adam  # some

Sections (TensorFlow backend, milliseconds per call, median of several timed repeats):

* ``rates``: the machine's matrix-multiply rate in float32 and bfloat16 (GFLOP/s, square products
  of 1024 and 2048), through TensorFlow and PyTorch (oneDNN both; PyTorch only if installed) and
  NumPy's float32 as the harness's peak rate, beside the CPU's bfloat16 feature flags. Without
  ``avx512_bf16`` or ``amx_bf16`` the bfloat16 products are converted to float32 and back, so they
  are no faster (often slower) than float32: the bfloat16 rate is this section's figure, not an
  assumption;
* ``ops``: a 2048x2048 matrix product (GFLOP/s) and mnist_cnn's second convolution (batch 64,
  forward and forward + backward), float32 against bfloat16;
* ``bn``: Keras's ``BatchNormalization`` against cnnlab's (``cnnlab.models.layers``, TensorFlow's
  fused kernel) in training, forward + backward, on a 64x32x32x32 batch, float32 and bfloat16;
* ``adam``: one Adam update of ``mnist_cnn``'s 1.1 M weights, Keras's against cnnlab's fused one
  (``cnnlab.training.optim.Adam``);
* ``steps``: forward, forward + backward, and a whole step (with the Adam update) of ``lenet5``,
  ``mnist_cnn`` and ``vgg_bn`` at their reference batch sizes, float32 and mixed_bfloat16, with
  Keras's layers and optimizer and with cnnlab's; each whole step also as GFLOP/s (3 x forward
  FLOPs from ``cnnlab.models.count_flops``) and as a share of the TensorFlow matmul rate of its
  precision (float32 or bfloat16, measured first).

Every contender runs in this one process, interleaved repeat by repeat, so that a busy machine
slows them alike; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cnnlab._keras import keras


def _median_ms(functions: dict, repeats: int = 5, calls: int = 10) -> dict:
    """Median milliseconds per call of each function, timing them in turn, ``repeats`` rounds."""
    times = {name: [] for name in functions}
    for fn in functions.values():  # trace and warm up
        fn()
        fn()
    for _ in range(repeats):
        for name, fn in functions.items():
            started = time.perf_counter()
            for _ in range(calls):
                out = fn()
            np.asarray(keras.ops.convert_to_numpy(keras.tree.flatten(out)[0]))  # wait for the result
            times[name].append((time.perf_counter() - started) / calls * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def _matmul_gflops(fn, n: int, repeats: int = 5) -> float:
    """Median GFLOP/s of ``fn()``, an ``n x n`` by ``n x n`` product that returns once computed."""
    fn()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(seconds) / 1e9


def tensorflow_matmul_rates(sizes=(1024, 2048)) -> dict:
    """{(dtype, n): GFLOP/s} of TensorFlow's matmul in float32 and bfloat16."""
    import tensorflow as tf

    rates = {}
    for n in sizes:
        for dtype in ("float32", "bfloat16"):
            a = tf.cast(tf.random.normal([n, n]), dtype)
            product = tf.function(lambda a=a: tf.reduce_sum(tf.cast(tf.matmul(a, a), "float32")))
            rates[(dtype, n)] = _matmul_gflops(lambda p=product: float(p()), n)
    return rates


def rates_section() -> None:
    from cnnlab.backend import cpu_flags
    from cnnlab.bench.machine import cpu_model
    from cnnlab.runtime import BF16_CPU_FLAGS

    flags = sorted(cpu_flags() & BF16_CPU_FLAGS)
    print(f"Matrix-multiply rates (GFLOP/s); CPU: {cpu_model()}; bfloat16 units: {', '.join(flags) or 'none'}")
    rows = {f"TensorFlow {tf_version()}": tensorflow_matmul_rates()}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch_rates = {}
        for n in (1024, 2048):
            for dtype in ("float32", "bfloat16"):
                a = torch.randn(n, n).to(getattr(torch, dtype))
                torch_rates[(dtype, n)] = _matmul_gflops(lambda a=a: torch.mm(a, a), n)
        rows[f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"] = torch_rates
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    rows["NumPy float32 (the harness's peak rate)"] = {("float32", 2048): _matmul_gflops(lambda: a @ a, 2048)}
    for name, rates in rows.items():
        cells = [f"{dtype} n={n}: {rate:7.1f}" for (dtype, n), rate in rates.items()]
        ratio = [
            f"bf16/fp32 n={n}: {rates[('bfloat16', n)] / rates[('float32', n)]:.2f}x"
            for n in (1024, 2048)
            if ("bfloat16", n) in rates
        ]
        print(f"  {name:<40} " + "   ".join(cells + ratio))


def tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def ops_section() -> None:
    import tensorflow as tf

    print("Raw TensorFlow ops, float32 vs bfloat16")
    for dtype in ("float32", "bfloat16"):
        a = tf.cast(tf.random.normal([2048, 2048]), dtype)
        x = tf.cast(tf.random.normal([64, 12, 12, 32]), dtype)
        w = tf.cast(tf.random.normal([5, 5, 32, 64]), dtype)

        @tf.function
        def conv_forward_backward():
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                loss = tf.reduce_sum(tf.cast(tf.nn.conv2d(x, w, 1, "VALID"), "float32"))
            return tape.gradient(loss, [x, w])

        result = _median_ms(
            {
                "matmul": tf.function(lambda: tf.matmul(a, a)),
                "conv": tf.function(lambda: tf.nn.conv2d(x, w, 1, "VALID")),
                "conv fwd+bwd": conv_forward_backward,
            }
        )
        print(
            f"  {dtype:<9} matmul 2048: {2 * 2048**3 / result['matmul'] / 1e6:6.1f} GFLOP/s   "
            f"conv 5x5 32->64 on 12x12, batch 64: forward {result['conv']:.2f} ms, "
            f"forward+backward {result['conv fwd+bwd']:.2f} ms"
        )


def bn_section() -> None:
    import tensorflow as tf

    from cnnlab.models.layers import BatchNormalization

    print("BatchNormalization, training forward + backward, batch 64x32x32x32 (ms)")
    for precision in ("float32", "mixed_bfloat16"):
        keras.config.set_dtype_policy(precision)
        layers = {"keras": keras.layers.BatchNormalization(), "cnnlab (fused)": BatchNormalization()}
        x = tf.cast(tf.random.normal([64, 32, 32, 32]), layers["keras"].compute_dtype)
        functions = {}
        for name, layer in layers.items():
            layer.build(x.shape)

            @tf.function
            def step(layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.reduce_sum(tf.cast(layer(x, training=True), "float32"))
                return tape.gradient(loss, [x, *layer.trainable_variables])

            functions[name] = step
        result = _median_ms(functions)
        print(
            f"  {precision:<15} keras {result['keras']:7.2f}   cnnlab {result['cnnlab (fused)']:7.2f}   "
            f"ratio {result['keras'] / result['cnnlab (fused)']:.2f}x"
        )
    keras.config.set_dtype_policy("float32")


def adam_section() -> None:
    import tensorflow as tf

    from cnnlab.models import create_model
    from cnnlab.training.optim import Adam

    print("Adam update of mnist_cnn's weights (ms)")
    functions = {}
    for name, optimizer_class in (("keras", keras.optimizers.Adam), ("cnnlab (fused)", Adam)):
        model = create_model("mnist_cnn", input_shape=(28, 28, 1), num_classes=10)
        optimizer = optimizer_class(1e-4)
        optimizer.build(model.trainable_variables)
        grads = [tf.random.normal(v.shape) * 1e-3 for v in model.trainable_variables]
        functions[name] = tf.function(
            lambda o=optimizer, g=grads, m=model: o.apply_gradients(zip(g, m.trainable_variables))
        )
    result = _median_ms(functions)
    print(
        f"  {model.count_params():,} weights: keras {result['keras']:.2f}   cnnlab {result['cnnlab (fused)']:.2f}   "
        f"ratio {result['keras'] / result['cnnlab (fused)']:.2f}x"
    )


SHAPES = {"lenet5": ((32, 32, 1), 100), "mnist_cnn": ((28, 28, 1), 64), "vgg_bn": ((32, 32, 3), 64)}


def steps_section(models=tuple(SHAPES)) -> None:
    import tensorflow as tf

    import cnnlab.models.layers as cnnlab_layers
    from cnnlab.models import count_flops, create_model
    from cnnlab.training.optim import Adam

    peak = tensorflow_matmul_rates(sizes=(2048,))
    print(
        f"Training step parts (ms): forward / forward+backward / whole step with Adam; GFLOP/s of the whole step "
        f"and its share of the TensorFlow matmul rate of its precision (float32 {peak[('float32', 2048)]:.1f}, "
        f"bfloat16 {peak[('bfloat16', 2048)]:.1f} GFLOP/s)"
    )
    for name in models:
        shape, batch = SHAPES[name]
        x = tf.random.uniform([batch, *shape])
        y = tf.random.uniform([batch], 0, 10, dtype=tf.int32)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        functions = {}
        for precision in ("float32", "mixed_bfloat16"):
            for kernels in ("keras", "cnnlab"):
                keras.config.set_dtype_policy(precision)
                model = create_model(name, input_shape=shape, num_classes=10)
                keras.config.set_dtype_policy("float32")
                if kernels == "keras":  # Keras's own BatchNormalization code: never fuse, on these layers
                    for layer in model.layers:
                        if isinstance(layer, cnnlab_layers.BatchNormalization):
                            layer._fusable = lambda inputs, mask: False
                optimizer = (Adam if kernels == "cnnlab" else keras.optimizers.Adam)(1e-4)
                optimizer.build(model.trainable_variables)

                def forward_backward(m=model):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(y, m(x, training=True))
                    return tape.gradient(loss, m.trainable_variables)

                def whole(m=model, o=optimizer, fb=forward_backward):
                    grads = fb(m)
                    o.apply_gradients(zip(grads, m.trainable_variables))
                    return grads[0]

                label = f"{precision}, {kernels} kernels"
                functions[(label, "fwd")] = tf.function(lambda m=model: m(x, training=True))
                functions[(label, "fwd+bwd")] = tf.function(forward_backward)
                functions[(label, "step")] = tf.function(whole)
        result = _median_ms(functions, repeats=3, calls=5)
        base = result[("float32, keras kernels", "step")]
        train_flops = 3 * count_flops(model) * batch
        print(f"  {name}, batch {batch}")
        for label in dict.fromkeys(k[0] for k in functions):
            fwd, fb, step = (result[(label, part)] for part in ("fwd", "fwd+bwd", "step"))
            gflops = train_flops / step / 1e6
            rate = peak[("bfloat16" if "bfloat16" in label else "float32", 2048)]
            print(
                f"    {label:<32} {fwd:7.1f} / {fb:7.1f} / {step:7.1f}   step {base / step:.2f}x   "
                f"{gflops:6.1f} GFLOP/s = {gflops / rate:.0%} of its matmul rate"
            )


SECTIONS = {"rates": rates_section, "ops": ops_section, "bn": bn_section, "adam": adam_section, "steps": steps_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=tuple(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("benchmarks/kernels.py measures TensorFlow kernels: run it with KERAS_BACKEND=tensorflow")
    for section in args.only:
        SECTIONS[section]()


if __name__ == "__main__":
    main()
