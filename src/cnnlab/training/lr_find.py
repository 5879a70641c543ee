"""``cnnlab lr-find``: the learning-rate range test.

Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3: train for a few
hundred steps while the rate grows from very small to large, and watch the loss. Here the rate
grows exponentially (equal steps in log scale, as fastai's ``lr_find``), the loss is smoothed with
a bias-corrected exponential moving average (``beta`` 0.98), and the test stops once the smoothed
loss exceeds ``4 x`` the best seen (the rate has become too large).

The suggested rate is the one where the smoothed loss falls fastest against log(rate) (the
steepest descent of the curve, between the first tenth of the steps and the minimum): there the rate is large enough to make quick progress and still
well below where the loss blows up. The minimum's rate divided by 10 (the other common rule) is in
the JSON too; it depends on exactly where the loss turns, which the smoothing delays.

The test trains a fresh network (or one loaded with ``--init-from``) in memory, with the options
``cnnlab train`` takes, and writes only ``lr-find.png`` and ``lr-find.json`` to ``out``: no run
folder is created and no file it reads is changed.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError

PLOT, RESULT = "lr-find.png", "lr-find.json"


@dataclass
class LRFindResult:
    rates: list[float]  # the rate of each step taken
    losses: list[float]  # each step's training loss (before its update)
    smoothed: list[float]
    suggested: float  # steepest descent of the smoothed curve
    min_loss_rate: float  # the rate at the smoothed minimum
    stopped_early: bool  # the smoothed loss exceeded diverge x its best
    plot: str = ""
    json: str = ""


def smooth(losses, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (as Adam's moments): ``avg_i / (1 - beta^(i+1))``."""
    out, average = [], 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return np.asarray(out)


def suggest(rates, smoothed) -> float:
    """The rate where the smoothed loss falls fastest against log10(rate)."""
    rates, smoothed = np.asarray(rates, dtype=float), np.asarray(smoothed, dtype=float)
    if len(rates) < 3:
        return float(rates[int(np.argmin(smoothed))])
    # Up to the minimum: beyond it the curve rises (and its last points are the divergence). The
    # first tenth is skipped: the moving average still rests on a few noisy losses there.
    end = int(np.argmin(smoothed)) + 1
    start = min(max(1, len(rates) // 10), max(end - 3, 0))
    if end - start < 3:
        return float(rates[int(np.argmin(smoothed))])
    slopes = np.gradient(smoothed[start:end], np.log10(rates[start:end]))
    return float(rates[start + int(np.argmin(slopes))])


def lr_find(
    model: str | None = None,
    dataset: str | None = None,
    recipe: str | None = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    out: str | os.PathLike = "lr-find",
    beta: float = 0.98,
    diverge: float = 4.0,
    data_dir=None,
    verbose: bool = True,
    **options,
) -> LRFindResult:
    """Run the range test for a model and dataset (or recipe) with ``cnnlab train``'s ``options``."""
    from cnnlab._keras import keras
    from cnnlab.backend import quiet_native_stderr
    from cnnlab.data.augmentation import Augmentation
    from cnnlab.data.preprocessing import Preprocessing
    from cnnlab.data.splits import batch_indices
    from cnnlab.io import atomic_path, atomic_write_json
    from cnnlab.training.config import resolve_config
    from cnnlab.training.datasets import fit_sample, load_run_dataset
    from cnnlab.training.engines import make_engine
    from cnnlab.training.loop import start_runtime
    from cnnlab.training.sampling import balanced_batch_indices, class_weights

    if not (0 < start_lr < end_lr) or not all(math.isfinite(r) for r in (start_lr, end_lr)):
        raise ConfigError(f"--start-lr / --end-lr: expected 0 < start < end, got {start_lr} and {end_lr}")
    if num_steps < 3:
        raise ConfigError(f"--steps: the range test needs at least 3 steps, got {num_steps}")
    for name in ("ema", "unfreeze_at", "lookahead", "whiten_bias_epochs"):
        if options.get(name) not in (None, 0, "", "off"):
            raise ConfigError(f"--{name.replace('_', '-')}: has no meaning for lr-find")
    options.update(steps=num_steps, lr=start_lr, schedule="constant", warmup_steps=0)
    preloaded = None
    if dataset is not None and not isinstance(dataset, str):
        preloaded, dataset = dataset, dataset.name
    config = resolve_config(model=model, dataset=dataset, recipe=recipe, **options)
    start_runtime(config)
    with quiet_native_stderr():
        keras.utils.set_random_seed(config.seed)
    data = preloaded or load_run_dataset(config, data_dir)
    train = data.train
    preprocessing = Preprocessing(
        image_size=data.input_shape[:2], channels=data.input_shape[2], pad=config.pad, normalize=config.normalize
    ).fit(fit_sample(train.x, statistics=config.normalize in ("standardize", "center")))
    augmentation = Augmentation.from_dict(config.augmentation)
    with quiet_native_stderr():
        engine = make_engine(config, preprocessing.output_shape, data.num_classes, num_steps)
    weights = class_weights(config.class_weight, train.y, data.num_classes)
    if weights is not None:
        engine.set_class_weights(weights)
    if config.init_from:
        engine.load_weights(config.init_from, data.class_names)

    def batches():
        epoch = 0
        while True:
            if config.sampler == "balanced":
                order = balanced_batch_indices(
                    train.y, config.batch_size, seed=config.seed, epoch=epoch, drop_last=config.drop_last
                )
            else:
                order = batch_indices(
                    len(train),
                    config.batch_size,
                    shuffle=config.shuffle,
                    seed=config.seed,
                    epoch=epoch,
                    drop_last=config.drop_last,
                )
            for index, rows in enumerate(order):
                x = train.x[rows]
                if augmentation.enabled:
                    x = augmentation(x, np.random.default_rng([config.seed, epoch, index]))
                yield preprocessing(x), train.y[rows]
            epoch += 1

    ratio = (end_lr / start_lr) ** (1 / (num_steps - 1))
    rates, losses, smoothed = [], [], []
    best, average, stopped = math.inf, 0.0, False
    for step, (x, y) in zip(range(num_steps), batches()):
        rate = start_lr * ratio**step
        engine.set_learning_rate(rate)
        loss, _ = engine.train_batch(x, y)
        if not math.isfinite(loss):
            stopped = True
            break
        rates.append(rate)
        losses.append(loss)
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (step + 1))
        smoothed.append(value)
        best = min(best, value)
        if step > 0 and value > diverge * best:
            stopped = True
            break
    if len(rates) < 3:
        raise ConfigError(f"lr-find: the loss diverged within {len(rates)} steps; lower --start-lr")
    result = LRFindResult(
        rates=rates,
        losses=losses,
        smoothed=smoothed,
        suggested=suggest(rates, smoothed),
        min_loss_rate=float(rates[int(np.argmin(smoothed))]),
        stopped_early=stopped,
    )
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    result.plot, result.json = str(out / PLOT), str(out / RESULT)
    _plot(result, out / PLOT, atomic_path)
    atomic_write_json(
        out / RESULT,
        {
            **asdict(result),
            "min_loss_rate_over_10": result.min_loss_rate / 10,
            "rule": "steepest descent of the smoothed loss against log10(rate)",
            "start_lr": start_lr,
            "end_lr": end_lr,
            "steps": num_steps,
            "beta": beta,
            "model": config.model,
            "dataset": config.dataset,
            "optimizer": config.optimizer,
            "batch_size": config.batch_size,
        },
    )
    if verbose:
        print(
            f"lr-find: {len(rates)} steps from {rates[0]:.3g} to {rates[-1]:.3g}"
            f"{' (stopped: the loss diverged)' if stopped else ''}; suggested rate {result.suggested:.3g} "
            f"(steepest descent), minimum at {result.min_loss_rate:.3g}"
        )
    return result


def _plot(result: LRFindResult, path: Path, atomic_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(result.rates, result.losses, color="0.75", linewidth=1, label="loss")
    ax.plot(result.rates, result.smoothed, color="C0", linewidth=2, label="smoothed loss")
    ax.axvline(result.suggested, color="C3", linestyle="--", label=f"suggested {result.suggested:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = max(result.smoothed[0], min(result.smoothed)) * 1.5
    ax.set_ylim(min(result.losses) * 0.9, max(top, min(result.losses) * 1.1))
    ax.set_title("Learning-rate range test")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
