"""The benchmark harness: contenders side by side, alternating, in fresh processes, with medians.

Shared machines are noisy: another process may take a core for a few seconds at any time. So
every comparison runs all of its contenders in one invocation, interleaved round by round (in an
order rotated each round, so no contender is always first after a quiet spell or last after a
busy one), each contender in a fresh process whose thread settings are fixed by its environment.
Figures are medians over rounds, ratios are ratios of medians, and each contender's process
reports its peak resident memory (``os.wait4``).

The contenders are modules of the package (:mod:`cnnlab.bench.contenders`, :mod:`cnnlab.bench.worker`)
run as ``python -m MODULE`` with the interpreter cnnlab is installed in, so an installed wheel
benchmarks as a checkout does.

Entry points: :func:`run_benchmark` (``cnnlab bench``; ``python -m benchmarks`` in a checkout).
"""

from __future__ import annotations

import json
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from cnnlab.bench.contenders import Contender, module_cmd, python_cmd
from cnnlab.bench.process import ProcessResult, run_process
from cnnlab.bench.protocol import DATASETS, RECIPES, REFERENCE_BATCH, SEGMENT_STEPS, Budget, parse_result
from cnnlab.bench.report import Table, fmt, print_tables, ratio

NETWORKS = ("lenet5", "mnist_cnn", "vgg_bn", "airbench")
SECTIONS = ("throughput", "memory", "startup", "tta", "tuning")
PLAIN_KERAS = "plain_keras"  # modules of cnnlab.bench.contenders
PLAIN_TORCH = "plain_torch"
PLAIN_JAX = "plain_jax"
PLAIN_TORCH_AIRBENCH = "plain_torch_airbench"


@dataclass
class Measurement:
    """Every round's result for one contender on one task."""

    contender: Contender
    runs: list[ProcessResult] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        """All per-segment values of ``key`` (a list in each result) or one per round (a number)."""
        out: list[float] = []
        for result in self.results:
            value = result.get(key)
            out.extend(value if isinstance(value, list) else [value] if value is not None else [])
        return out

    def median(self, key: str = "images_per_s") -> float | None:
        values = self.values(key)
        return statistics.median(values) if values else None

    def median_rss_mb(self) -> float | None:
        return statistics.median(r.peak_rss_mb for r in self.runs) if self.runs else None

    def median_seconds(self) -> float | None:
        ok = [r.seconds for r in self.runs if r.returncode == 0]
        return statistics.median(ok) if ok else None


#: Each backend's own framework, used plainly (a contender key): what cnnlab on that backend is compared with.
PLAIN_FRAMEWORK = {"tensorflow": "plain-keras", "torch": "plain-torch", "jax": "plain-jax"}
#: The module each backend needs (a contender without it is reported as not installed).
BACKEND_MODULE = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


def throughput_contenders(model: str, backends: Iterable[str] = ("tensorflow", "jax", "torch")) -> list[Contender]:
    """Plain Keras, plain PyTorch, plain JAX, cnnlab's default, and cnnlab on each backend, for ``model``;
    for a network raced as a recipe (``RECIPES``), :func:`recipe_contenders`."""
    if model in RECIPES:
        return recipe_contenders(model)
    worker = python_cmd("-m", "cnnlab.bench.worker", "--engine", "cnnlab")
    contenders = [
        Contender("plain Keras (TF)", module_cmd(PLAIN_KERAS), key="plain-keras"),
        Contender("plain PyTorch", module_cmd(PLAIN_TORCH), key="plain-torch", requires="torch"),
        Contender("plain JAX", module_cmd(PLAIN_JAX), key="plain-jax", requires="jax"),
        Contender("cnnlab default", worker, key="cnnlab"),
    ]
    for backend in backends:
        contenders.append(
            Contender(
                f"cnnlab {backend}",
                worker + ("--backend", backend),
                key=f"cnnlab-{backend}",
                requires=BACKEND_MODULE[backend],
            )
        )
    return contenders


def recipe_contenders(model: str) -> list[Contender]:
    """The recipe written in plain PyTorch as its paper describes it, and ``cnnlab train --recipe``
    on its defaults and in float32 (what the precision ``auto`` chooses adds, read off apart)."""
    worker = python_cmd("-m", "cnnlab.bench.worker", "--recipe", RECIPES[model])
    return [
        Contender(
            "plain PyTorch (airbench94 as written)",
            module_cmd(PLAIN_TORCH_AIRBENCH),
            key="plain-torch",
            requires="torch",
        ),
        Contender(f"cnnlab --recipe {RECIPES[model]}", worker, key="cnnlab"),
        Contender(
            f"cnnlab --recipe {RECIPES[model]}, float32", worker + ("--precision", "float32"), key="cnnlab-float32"
        ),
    ]


CONTENDER_KEYS = tuple(dict.fromkeys(c.key for m in ("lenet5", *RECIPES) for c in throughput_contenders(m)))


def select(contenders: list[Contender], keys: Iterable[str] | None) -> list[Contender]:
    """The contenders whose key is in ``keys`` (all when ``keys`` is empty)."""
    keys = list(keys or ())
    return [c for c in contenders if not keys or (c.key or c.label) in keys]


def task_args(model: str, steps: int, repeats: int, warmup_steps: int, data: str = "synthetic") -> tuple[str, ...]:
    return (
        "--model",
        model,
        "--batch-size",
        str(REFERENCE_BATCH[model]),
        "--steps",
        str(steps),
        "--repeats",
        str(repeats),
        "--warmup-steps",
        str(warmup_steps),
        "--data",
        data,
    )


def alternate(
    contenders: list[Contender],
    rounds: int,
    extra_args: tuple[str, ...] = (),
    timeout: float = 900,
    log: Callable[[str], None] = lambda s: None,
) -> list[Measurement]:
    """Run every contender once per round, in an order rotated each round; collect the results."""
    measurements = [Measurement(c) for c in contenders]
    for m in measurements:
        if m.contender.missing():
            m.errors.append(f"not installed ({m.contender.missing()})")
            log(f"  {m.contender.label:<28} not installed: {m.contender.missing()} is not importable here")
    for round_index in range(rounds if contenders else 0):
        shift = round_index % len(contenders)
        for m in measurements[shift:] + measurements[:shift]:
            if m.contender.missing():
                continue
            run = run_process([*m.contender.argv, *extra_args], env=m.contender.env, timeout=timeout)
            m.runs.append(run)
            result = parse_result(run.stdout)
            if run.returncode == 0 and result is not None:
                m.results.append(result)
                log(f"  round {round_index + 1}/{rounds}  {m.contender.label:<28} {_brief(result)}")
            else:
                m.errors.append(_last_line(run.stderr) or f"exit {run.returncode}")
                log(f"  round {round_index + 1}/{rounds}  {m.contender.label:<28} FAILED: {m.errors[-1]}")
    return measurements


def _brief(result: dict) -> str:
    rates = result.get("images_per_s")
    if rates:
        return f"{statistics.median(rates):8.0f} images/s"
    return json.dumps(result)[:80]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# ----------------------------------------------------------------------------- machine facts


def measure_matmul(rounds: int = 3, function: str = "matmul_gflops") -> float:
    """Median over ``rounds`` fresh processes of :func:`cnnlab.bench.machine.matmul_gflops`
    (or ``bf16_matmul_gflops``); NaN when it cannot be measured."""
    code = f"from cnnlab.bench.machine import {function}; print({function}())"
    values = []
    for _ in range(rounds):
        run = run_process([sys.executable, "-c", code], timeout=300)
        last = run.stdout.strip().splitlines()[-1:] if run.returncode == 0 else []
        if last and last[0] != "None":
            values.append(float(last[0]))
    return statistics.median(values) if values else float("nan")


def training_flops(models: Iterable[str]) -> dict[str, int]:
    """Training FLOPs per image = 3 x forward FLOPs (``cnnlab.models.count_flops``), from a subprocess.

    Convention: the backward pass costs about twice the forward (one product for the gradient
    with respect to the activations, one for the weights), so a training step is ~3x forward.
    """
    code = (
        "import json, sys\n"
        "from cnnlab.models import create_model, count_flops\n"
        "from cnnlab.bench.protocol import INPUT_SHAPES\n"
        "print(json.dumps({m: 3 * count_flops(create_model(m, input_shape=INPUT_SHAPES[m])) for m in sys.argv[1:]}))\n"
    )
    run = run_process([sys.executable, "-c", code, *models], timeout=300)
    if run.returncode != 0:
        return {}
    return json.loads(run.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- sections


def throughput_section(
    models,
    budget: Budget,
    matmul: float,
    flops: dict,
    contenders_for=throughput_contenders,
    keys: Iterable[str] | None = None,
    log=print,
) -> tuple[list[Table], dict]:
    """Training images/s per network and contender, ratios to the plain baselines, % of matmul, peak RSS."""
    tables, raw = [], {}
    for model in models:
        log(f"throughput: {model} (batch {REFERENCE_BATCH[model]})")
        contenders = select(contenders_for(model), keys)
        args = task_args(model, budget.steps(model), budget.repeats, budget.warmup(model))
        measurements = alternate(contenders, budget.rounds, args, log=log)
        raw[model] = measurements
        by_key = {m.contender.key or m.contender.label: m.median() for m in measurements}
        keras_rate, torch_rate = by_key.get("plain-keras"), by_key.get("plain-torch")
        backends = {m.contender.label: (m.results[0].get("backend") if m.results else None) for m in measurements}
        table = Table(
            f"Training throughput: {model}, batch {REFERENCE_BATCH[model]}",
            [
                "contender",
                "images/s (median)",
                "range",
                "vs plain Keras",
                "vs plain PyTorch",
                "vs its own framework",
                "% of matmul rate",
                "images/CPU-s",
                "peak RSS MB",
            ],
        )
        for m in measurements:
            rate, values = m.median(), m.values("images_per_s")
            if values:
                spread = f"{min(values):,.0f}-{max(values):,.0f}"
            elif m.contender.missing():
                spread = m.errors[0]
            else:
                spread = "failed: " + "; ".join(m.errors[:1])
            # cnnlab on a backend against that backend's framework used plainly (the worker reports its backend)
            own = PLAIN_FRAMEWORK.get(backends[m.contender.label] or "")
            own_ratio = ratio(rate, by_key.get(own)) if m.contender.label.startswith("cnnlab") and own else ""
            share = None
            if rate and model in flops and matmul == matmul:  # NaN check: matmul not measured
                share = 100 * rate * flops[model] / (matmul * 1e9)
            table.rows.append(
                [
                    m.contender.label,
                    fmt(rate),
                    spread,
                    ratio(rate, keras_rate),
                    ratio(rate, torch_rate),
                    own_ratio,
                    fmt(share, ".1f"),
                    fmt(m.median("images_per_cpu_s")),
                    fmt(m.median_rss_mb()),
                ]
            )
        if model in RECIPES:
            table.notes.append(
                f"{model}: each side trains its whole recipe on synthetic images (augmentation, "
                "normalisation, schedule, label smoothing; the plain script also averages the weights "
                "every 5 steps, airbench94's lookahead, which the recipe leaves off); plain PyTorch in "
                f"float32 with PyTorch's default threads; cnnlab as `cnnlab train --recipe {RECIPES[model]}` "
                "(its precision `auto`: bfloat16 where the CPU has bf16 units), and in float32. "
                "vs plain PyTorch is against the plain-PyTorch script of the same recipe."
            )
        if model in flops:
            table.notes.append(
                f"Training FLOPs/image = 3 x forward = {flops[model] / 1e6:,.1f} MFLOP. "
                "images/CPU-s: per second of the process's CPU time (all threads), "
                "less disturbed by other jobs on a shared machine. "
                "vs its own framework: cnnlab on a backend against that framework used plainly "
                "(TensorFlow: plain Keras; torch: plain PyTorch; JAX: plain JAX)."
            )
        tables.append(table)
    return tables, raw


MEMORY_STEPS = 20


def memory_contenders(model: str, runs_dir: Path) -> list[Contender]:
    """Training processes on the real data set: the plain baselines, and cnnlab's whole ``train()``."""
    code = (
        "import sys, cnnlab\n"
        "from cnnlab.bench.protocol import emit\n"
        "run = cnnlab.train(model=sys.argv[1], dataset=sys.argv[2], steps=int(sys.argv[3]),\n"
        "                   batch_size=int(sys.argv[4]), runs_dir=sys.argv[5], max_eval_samples=1000, verbose=False)\n"
        "emit({'test_accuracy': run.metrics.get('accuracy')})\n"
    )
    train_args = (model, DATASETS[model], str(MEMORY_STEPS), str(REFERENCE_BATCH[model]), str(runs_dir))
    data_args = task_args(model, MEMORY_STEPS, 1, 2, data="real")
    return [
        Contender("plain Keras (TF)", module_cmd(PLAIN_KERAS, *data_args), key="plain-keras"),
        Contender("plain PyTorch", module_cmd(PLAIN_TORCH, *data_args), key="plain-torch"),
        Contender("cnnlab train()", python_cmd("-c", code, *train_args), key="cnnlab"),
    ]


def memory_section(models, budget: Budget, workdir: Path, keys=None, log=print) -> list[Table]:
    """Peak resident memory of a training process holding the whole real training set."""
    table = Table(
        f"Peak memory (RSS) of a training process on the real data set ({MEMORY_STEPS} steps)",
        ["network", "data set", "contender", "peak RSS MB (median)", "range"],
    )
    for model in models:
        if model in RECIPES:  # raced as a recipe: no plain-Keras memory contender for it
            continue
        log(f"memory: {model} on {DATASETS[model]}")
        measurements = alternate(select(memory_contenders(model, workdir), keys), budget.rounds, log=log)
        for m in measurements:
            rss = [r.peak_rss_mb for r in m.runs if r.returncode == 0]
            spread = f"{min(rss):,.0f}-{max(rss):,.0f}" if rss else "failed: " + "; ".join(m.errors[:1])
            median = statistics.median(rss) if rss else None
            table.rows.append([model, DATASETS[model], m.contender.label, fmt(median), spread])
    table.notes.append(
        "Plain baselines convert the whole training set to float32 up front, as the tutorials do; "
        "cnnlab keeps it as uint8 and converts each batch."
    )
    return [table]


def startup_contenders(predict_args: tuple[str, ...] | None) -> list[Contender]:
    """Commands whose wall-clock start-up time matters to a user."""
    cli = python_cmd("-m", "cnnlab")
    contenders = [
        Contender("cnnlab --help", cli + ("--help",)),
        Contender("python -c 'import cnnlab'", python_cmd("-c", "import cnnlab")),
    ]
    for backend in ("tensorflow", "jax", "torch"):
        contenders.append(
            Contender(f"import keras ({backend})", python_cmd("-c", "import keras"), {"KERAS_BACKEND": backend})
        )
    contenders.append(Contender("import tensorflow", python_cmd("-c", "import tensorflow")))
    contenders.append(Contender("cnnlab info", cli + ("info",)))
    if predict_args:
        contenders.append(Contender("cnnlab predict (1 image, incl. model load)", cli + ("predict", *predict_args)))
    return contenders


def prepare_predict_run(workdir: Path) -> tuple[str, ...] | None:
    """Train a tiny lenet5 run (2 steps) and write one PNG, so ``cnnlab predict`` can be timed."""
    code = (
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "import cnnlab\n"
        "run = cnnlab.train(model='lenet5', dataset='mnist', steps=2, max_train_samples=256, max_eval_samples=256,\n"
        "                   runs_dir=sys.argv[1], name='predict-bench', verbose=False)\n"
        "Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(sys.argv[1] + '/digit.png')\n"
        "print(run.path)\n"
    )
    run = run_process([sys.executable, "-c", code, str(workdir)], timeout=600)
    if run.returncode != 0:
        return None
    return (str(workdir / "predict-bench"), str(workdir / "digit.png"))


HEAVY_PACKAGES = ("tensorflow", "jax", "torch", "sklearn", "scipy", "matplotlib", "keras")


def import_breakdown(statement: str = "import keras", env: dict | None = None) -> dict[str, float]:
    """Seconds spent importing each heavy package during ``statement`` (``python -X importtime``).

    The figure is the cumulative time of the package's first import, wherever it came from:
    e.g. on TensorFlow ``import keras`` also imports scikit-learn (``keras.wrappers``) and JAX
    (``tensorflow.lite``), which explains a start-up far longer than TensorFlow's own.
    """
    run = run_process([sys.executable, "-X", "importtime", "-c", statement], env=env, timeout=300)
    seconds: dict[str, float] = {}
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if name in HEAVY_PACKAGES and cumulative.strip().isdigit():
            seconds[name] = int(cumulative) / 1e6  # the package line closes its own import: keep the last
    return seconds


def startup_section(budget: Budget, workdir: Path, log=print) -> list[Table]:
    log("start-up")
    predict_args = prepare_predict_run(workdir)
    measurements = alternate(startup_contenders(predict_args), max(budget.rounds, 3), log=lambda s: None)
    table = Table("Start-up (wall-clock of a fresh process)", ["command", "seconds (median)", "range", "peak RSS MB"])
    for m in measurements:
        ok = [r.seconds for r in m.runs if r.returncode == 0]
        spread = f"{min(ok):.2f}-{max(ok):.2f}" if ok else "failed: " + "; ".join(m.errors[:1])
        table.rows.append([m.contender.label, fmt(m.median_seconds(), ".2f"), spread, fmt(m.median_rss_mb())])
        log(f"  {m.contender.label:<44} {fmt(m.median_seconds(), '.2f')} s")
    if predict_args is None:
        table.notes.append("cnnlab predict not measured: the tiny run it needs could not be trained here.")
    for backend in ("tensorflow", "jax", "torch"):
        parts = import_breakdown(env={"KERAS_BACKEND": backend})
        if parts:
            detail = ", ".join(f"{name} {sec:.2f} s" for name, sec in sorted(parts.items(), key=lambda kv: -kv[1]))
            table.notes.append(f"`import keras` on {backend} (python -X importtime, cumulative per package): {detail}")
    return [table]


def tuning_contenders(model: str) -> list[Contender]:
    """The runtime choices docs/performance.md decides between, on the TensorFlow backend and the others.

    Each varies one thing from Keras's defaults (``fit``, float32 input, no XLA on a CPU,
    TensorFlow's own thread pools), so its effect can be read off the table.
    """
    worker = python_cmd("-m", "cnnlab.bench.worker")
    tf_default_threads = {"TF_NUM_INTRAOP_THREADS": "0", "TF_NUM_INTEROP_THREADS": "0"}  # 0 = TF decides
    return [
        Contender("plain Keras (TF)", module_cmd(PLAIN_KERAS), key="plain-keras"),
        Contender("tf fit, TF thread defaults", worker + ("--engine", "fit"), tf_default_threads),
        Contender("tf fit, intra 2 inter 1", worker + ("--engine", "fit")),
        Contender("tf fit, intra 1 inter 1", worker + ("--engine", "fit"), {"CNNLAB_THREADS": "1"}),
        Contender("tf fit, intra 2 inter 2", worker + ("--engine", "fit"), {"TF_NUM_INTEROP_THREADS": "2"}),
        Contender("tf fit, oneDNN off", worker + ("--engine", "fit"), {"TF_ENABLE_ONEDNN_OPTS": "0"}),
        Contender("tf fit, XLA (slow on CPU)", worker + ("--engine", "fit", "--jit", "on")),
        Contender("tf fit, spe 8, uint8 in", worker + ("--engine", "fit", "--spe", "8", "--input", "uint8")),
        Contender("tf fit, bf16", worker + ("--engine", "fit", "--precision", "mixed_bfloat16")),
        Contender(
            "tf fit, bf16, spe 8, uint8 in",
            worker + ("--engine", "fit", "--spe", "8", "--input", "uint8", "--precision", "mixed_bfloat16"),
        ),
        Contender("tf train_on_batch", worker + ("--engine", "train_on_batch")),
        Contender(
            "cnnlab engine, float32, 1 step/call",
            worker + ("--engine", "cnnlab", "--precision", "float32", "--spe", "1"),
        ),
        Contender("cnnlab engine, float32", worker + ("--engine", "cnnlab", "--precision", "float32")),
        Contender("cnnlab engine, batch not split", worker + ("--engine", "cnnlab", "--split-batch", "1")),
        Contender("cnnlab engine (default)", worker + ("--engine", "cnnlab", "--backend", "tensorflow")),
        Contender("jax fit", worker + ("--engine", "fit", "--backend", "jax")),
        Contender("jax train_on_batch", worker + ("--engine", "train_on_batch", "--backend", "jax")),
        Contender("torch train_on_batch", worker + ("--engine", "train_on_batch", "--backend", "torch")),
        Contender("plain PyTorch", module_cmd(PLAIN_TORCH), key="plain-torch"),
    ]


def tuning_section(models, budget: Budget, matmul: float, flops: dict, log=print) -> list[Table]:
    models = [m for m in models if m not in RECIPES]  # the tuning choices are the reference Adam step's
    tables, _ = throughput_section(models, budget, matmul, flops, contenders_for=tuning_contenders, log=log)
    for table in tables:
        table.title = "Tuning: " + table.title
    return tables


# ----------------------------------------------------------------------------- report


def render_markdown(
    command: str,
    machine: dict,
    matmul: float,
    tables: list[Table],
    matmul_rounds: int = 3,
    bf16_matmul: float = float("nan"),
    note: str = "",
) -> str:
    """docs/benchmarks.md: how it was produced, on what, then the tables."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        "# Benchmarks",
        "",
        "Generated by the benchmark harness; do not edit by hand. Reproduce with:",
        "",
        "```",
        command,
        "```",
        "",
        *([f"> {note}", ""] if note else []),
        *(
            [
                f"- Host CPU steal during the run: {machine['steal']:.1%} of CPU time"
                + (" (**noisy: compare ratios within this run only**)" if machine["steal"] > 0.05 else "")
            ]
            if machine.get("steal") is not None
            else []
        ),
        f"- Device: **{machine['device']}**; CPU: {machine['cpu']}, {machine['cores']} cores usable, "
        f"{machine['memory_gb']} GB RAM; {machine['os']}, Python {machine['python']}",
        f"- Libraries: {versions}",
        f"- Measured single-precision matrix-multiply rate (NumPy 2048x2048 float32, median of {matmul_rounds} "
        f"fresh process(es) x 7 products): **{matmul:,.1f} GFLOP/s**; the % of matmul rate columns divide "
        f"by this. bfloat16 rate (PyTorch, oneDNN; CPU bf16 units: "
        f"{', '.join(machine.get('bf16_units') or ['none'])}): {bf16_matmul:,.1f} GFLOP/s",
        "- Method: every contender runs in its own fresh process; contenders alternate round by round in "
        "a rotated order; figures are medians over rounds and timed segments, ranges are min-max; "
        "throughput and tuning train on synthetic uint8 images of the right shape (speed does not depend "
        "on pixel values), memory and time to accuracy on the real data sets. "
        "Training FLOPs/image = 3 x forward FLOPs (`cnnlab.models.count_flops`, a multiply-add = 2).",
        "",
        "See docs/performance.md for what these figures decided.",
    ]
    for table in tables:
        lines += [
            "",
            f"## {table.title}",
            "",
            "| " + " | ".join(table.columns) + " |",
            "|" + "|".join("---" for _ in table.columns) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        if table.notes:
            lines += [""] + [f"{note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def run_benchmark(
    only: Iterable[str] | None = None,
    quick: bool = False,
    out: str | Path | None = None,
    models: Iterable[str] = NETWORKS,
    budget: Budget | None = None,
    contenders: Iterable[str] | None = None,
    command: str | None = None,
    note: str = "",
    log: Callable[[str], None] = print,
    tta_datasets: Iterable[str] | None = None,
    tta_recipes: Iterable[str] | None = None,
) -> str:
    """Run the selected sections, print the tables, write the markdown report to ``out``; return it.

    ``tta_datasets`` and ``tta_recipes`` limit the time-to-accuracy section to the tasks on those
    data sets and of those fast recipes (default: all).
    """
    import tempfile

    from cnnlab.bench.machine import cpu_times, machine_info, steal_fraction
    from cnnlab.errors import ConfigError
    from cnnlab.io import atomic_write_text

    sections = list(only or ("throughput", "startup"))
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ConfigError(f"--only: unknown section {unknown[0]!r}; expected one of {', '.join(SECTIONS)}")
    models = list(models)
    bad = [m for m in models if m not in SEGMENT_STEPS]
    if bad:
        raise ConfigError(f"--model: no benchmark task for {bad[0]!r}; expected one of {', '.join(SEGMENT_STEPS)}")
    budget = budget or (Budget.quick() if quick else Budget())
    contenders = list(contenders or ())
    if any(k not in CONTENDER_KEYS for k in contenders):
        wrong = next(k for k in contenders if k not in CONTENDER_KEYS)
        raise ConfigError(f"--contender: unknown contender {wrong!r}; expected one of {', '.join(CONTENDER_KEYS)}")
    from cnnlab.bench.tta import select_tasks

    tta_tasks = select_tasks(tta_datasets, tta_recipes)
    machine = machine_info()
    log(f"device: {machine['device']}; CPU: {machine['cpu']}, {machine['cores']} cores")
    cpu_before = cpu_times()
    matmul_rounds = 1 if quick else 3
    matmul = measure_matmul(matmul_rounds)
    bf16_matmul = measure_matmul(matmul_rounds, "bf16_matmul_gflops")
    log(f"matmul rate: {matmul:,.1f} GFLOP/s float32, {bf16_matmul:,.1f} GFLOP/s bfloat16")
    needs_flops = any(s in sections for s in ("throughput", "tuning"))
    flops = training_flops(models) if needs_flops else {}
    tables: list[Table] = []
    if "throughput" in sections:
        tables += throughput_section(models, budget, matmul, flops, keys=contenders, log=log)[0]
    if "memory" in sections:
        with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as workdir:
            tables += memory_section(models, budget, Path(workdir), keys=contenders, log=log)
    if "tuning" in sections:
        tables += tuning_section(models, budget, matmul, flops, log=log)
    if "startup" in sections:
        with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as workdir:
            tables += startup_section(budget, Path(workdir), log=log)
    if "tta" in sections:
        from cnnlab.bench.tta import tta_section

        tables += tta_section(budget, tta_tasks, log=log)
    print_tables(tables, log=log)
    command = command or "cnnlab bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    steal = steal_fraction(cpu_before, cpu_times())
    if steal is not None:
        machine["steal"] = steal
        log(f"CPU time taken by the host (steal) during the run: {steal:.1%}")
    report = render_markdown(command, machine, matmul, tables, matmul_rounds, bf16_matmul, note)
    if out:
        atomic_write_text(out, report)
        log(f"wrote {out}")
    return report
