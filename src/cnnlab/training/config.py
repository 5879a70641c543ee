"""The training configuration: the option schema, resolved from a recipe plus overrides.

Each training option is declared once, as a field of :class:`TrainConfig` made with
:func:`option`: its type and default, the check that coerces and validates a value, the CLI's
metavar, help text and ``--help`` panel, and (for options added after run folders existed) the
value older runs used. The CLI's ``cnnlab train`` options, the validation of recipes, of the
Python API's keyword arguments and of a run's ``config.json`` all derive from those fields.

Every option has one spelling, the CLI's (``--lr``), used in error messages for both the CLI
and the Python API, so a user sees the same one-line ``ConfigError`` wherever the bad value
came from. Recipes (``recipes/*.toml``) are TOML files whose top-level keys are the fields
below; the tables ``[model_options]``, ``[augmentation]`` and ``[reference]`` hold the model's
builder options, the data augmentation and the figure the recipe reproduces.

Only the standard library is imported here: the CLI validates options before loading Keras.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomllib

from cnnlab.constants import (
    AUGMENTATION_KEYS,
    LEVELS,
    MONITORS,
    NORMALIZE_MODES,
    OPTIMIZERS,
    PRECISIONS,
    RESIZE_POLICIES,
    SCHEDULES,
    STREAM_CHOICES,
    TTA_MODES,
)
from cnnlab.errors import ConfigError

RECIPES_DIR_ENV = "CNNLAB_RECIPES_DIR"

# The --help panels of `cnnlab train`, in the order they are shown.
PANELS = ("model", "data", "optimisation", "schedule", "budget", "checkpoints", "runtime")

_NO_LEGACY = object()


def flag(name: str) -> str:
    """The CLI spelling of a config field, used in every error message."""
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------- coercion


def _positive_number(name, value):
    number = _number(name, value, "a positive number")
    if not number > 0:
        raise _bad(name, "a positive number", value)
    return number


def _non_negative_number(name, value):
    number = _number(name, value, "a number >= 0")
    if number < 0:
        raise _bad(name, "a number >= 0", value)
    return number


def _fraction(name, value):
    number = _number(name, value, "a number in [0, 1)")
    if not 0 <= number < 1:
        raise _bad(name, "a number in [0, 1)", value)
    return number


def _number(name, value, expected):
    if isinstance(value, bool):
        raise _bad(name, expected, value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(name, expected, value) from None
    if not math.isfinite(number):
        raise _bad(name, expected, value)
    return number


def _integer(name, value, minimum, expected):
    if isinstance(value, bool):
        raise _bad(name, expected, value)
    try:
        number = int(str(value).replace("_", "").replace(",", "")) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise _bad(name, expected, value) from None
    if isinstance(value, float) and value != number:
        raise _bad(name, expected, value)
    if number < minimum:
        raise _bad(name, expected, value)
    return number


def _positive_int(name, value):
    return _integer(name, value, 1, "a positive integer")


def _non_negative_int(name, value):
    return _integer(name, value, 0, "an integer >= 0")


def _any_int(name, value):
    return _integer(name, value, -(2**63), "an integer")


def _boolean(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _bad(name, "true or false", value)


def _text(name, value):
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, "a non-empty name", value)
    return value.strip()


def _optional_text(name, value):
    return "" if value in (None, "") else _text(name, value)


def _choice(options):
    def check(name, value):
        text = str(value).strip().lower().replace("_", "-") if isinstance(value, str) else value
        if name == "optimizer" and text == "rms-prop":
            text = "rmsprop"
        wanted = [o.replace("_", "-") for o in options]
        if text not in wanted:
            raise ConfigError(f"{flag(name)}: expected one of {', '.join(options)}, got {value!r}")
        return options[wanted.index(text)]

    return check


def _table(name, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(name, "a table of options", value)
    return dict(value)


def _holdout(name, value):
    """auto, none, a fraction in (0, 1), "10%", or a count of images."""
    if value is None:
        return "none"
    text = str(value).strip().lower()
    if text in ("auto", "none", "0"):
        return "none" if text == "0" else text
    if isinstance(value, bool):
        raise _bad(name, "auto, none, a fraction, a percentage or a count", value)
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise _bad(name, "auto, none, a fraction, a percentage or a count", value) from None
    if not math.isfinite(number) or number <= 0 or (number >= 1 and number != int(number)):
        raise _bad(name, "a fraction in (0, 1), a percentage or a positive count", value)
    return str(int(number)) if number >= 1 else f"{number:g}"


def _image_size(name, value):
    """ "" (the dataset's own size), "H" or "H,W" (also HxW)."""
    if value is None or str(value).strip() == "":
        return ""
    parts = str(value).lower().replace("x", ",").split(",")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1 or max(sizes) > 4096:
        raise _bad(name, "H or H,W in pixels (1 to 4096)", value)
    return ",".join(str(v) for v in (sizes * 2)[:2])


def _flip(name, value):
    """true / false, or "alternate" (airbench's derandomized flip: each image on alternate epochs)."""
    if isinstance(value, str) and value.strip().lower() == "alternate":
        return "alternate"
    try:
        return _boolean(name, value)
    except ConfigError:
        raise _bad(name, "true, false or alternate", value) from None


def _augmentation(name, value):
    table = _table(name, value)
    unknown = sorted(set(table) - set(AUGMENTATION_KEYS))
    if unknown:
        raise ConfigError(f"--augment: unknown key {unknown[0]!r}; expected {', '.join(AUGMENTATION_KEYS)}")
    checks = {
        "shift": _non_negative_number,
        "zoom": _non_negative_number,
        "rotation": _non_negative_number,
        "crop_padding": _non_negative_int,
        "flip": _flip,
    }
    for key, check in checks.items():
        if key in table:
            try:
                table[key] = check(key, table[key])
            except ConfigError as exc:  # "--flip: expected ..." -> "--augment: flip: expected ..."
                raise ConfigError(f"--augment: {key}: {str(exc).split(': ', 1)[1]}") from None
    return table


def _val_split(name, value):
    """None, a fraction in (0, 1), a count, or a "first:N" / "last:N" / "first:10%" string."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "0")):
        return None
    if isinstance(value, bool):
        raise _bad(name, "a fraction, a count, or first:N / last:N", value)
    if isinstance(value, (int, float)):
        if value <= 0 or (isinstance(value, float) and value >= 1 and value != int(value)):
            raise _bad(name, "a fraction in (0, 1) or a positive count", value)
        return int(value) if value >= 1 else float(value)
    text = str(value).strip()
    for convert in (int, float):
        try:
            return _val_split(name, convert(text))
        except ValueError:
            pass
    # "first:10%", "last:10000", "10%": parsed (and checked) by cnnlab.data
    return text


def _ema_decay(name, value):
    """0 (off) or a decay in (0, 1)."""
    number = _number(name, value, "0 (off) or a decay in (0, 1), e.g. 0.999")
    if not (number == 0 or 0 < number < 1):
        raise _bad(name, "0 (off) or a decay in (0, 1), e.g. 0.999", value)
    return number


LOOKAHEAD_AIRBENCH = (4, 5)  # airbench94: from (1-based) epoch 4, every 5 steps


def _lookahead(name, value):
    """off, on (airbench94's settings) or "start=EPOCH,every=STEPS"; stored in that canonical form."""
    expected = "off, on (airbench94: start=4,every=5) or start=EPOCH,every=STEPS"
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return "off"
    if value is True or (isinstance(value, str) and value.strip().lower() in ("on", "airbench")):
        return "on"
    if not isinstance(value, str):
        raise _bad(name, expected, value)
    settings = dict(zip(("start", "every"), LOOKAHEAD_AIRBENCH))
    for part in value.split(","):
        key, sep, number = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in settings:
            raise _bad(name, expected, value)
        try:
            settings[key] = int(number.strip())
        except ValueError:
            raise _bad(name, expected, value) from None
        if settings[key] < 1:
            raise _bad(name, expected + " (both >= 1)", value)
    return f"start={settings['start']},every={settings['every']}"


def lookahead_settings(text: str) -> tuple[int, int] | None:
    """``--lookahead``'s stored text as (first epoch counting from 0, steps between updates); None when off."""
    if text == "off":
        return None
    if text == "on":
        start, every = LOOKAHEAD_AIRBENCH
    else:
        parts = dict(part.split("=") for part in text.split(","))
        start, every = int(parts["start"]), int(parts["every"])
    return start - 1, every


def _class_weight(name, value):
    """ "" (off), "balanced", or per-class weights: "0=1.0,1=2.5" (or a table {0 = 1.0, 1 = 2.5}).

    Stored in its canonical text form (``"0=1,1=2.5"``), so config.json and recipes read the same.
    """
    expected = "balanced or CLASS=WEIGHT pairs such as 0=1.0,1=2.5"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return ""
    if isinstance(value, str) and value.strip().lower() == "balanced":
        return "balanced"
    pairs = value.items() if isinstance(value, dict) else None
    if pairs is None:
        if not isinstance(value, str):
            raise _bad(name, expected, value)
        pairs = []
        for item in value.split(","):
            key, sep, weight = item.partition("=")
            if not sep:
                raise _bad(name, expected, value)
            pairs.append((key, weight))
    weights = {}
    for key, weight in pairs:
        index = _integer(name, str(key).strip(), 0, expected) if str(key).strip().isdigit() else None
        if index is None:
            raise _bad(name, expected, value)
        number = _number(name, weight, expected)
        if number < 0:
            raise _bad(name, expected, value)
        weights[index] = number
    if not weights or not any(weights.values()):
        raise _bad(name, expected, value)
    return ",".join(f"{k}={v!r}" for k, v in sorted(weights.items()))


def class_weight_table(spec: str) -> dict[int, float]:
    """``"0=1,1=2.5"`` -> ``{0: 1.0, 1: 2.5}`` (classes not named weigh 1); ``{}`` for "" and "balanced"."""
    if spec in ("", "balanced"):
        return {}
    return {int(k): float(v) for k, v in (item.split("=") for item in spec.split(","))}


def _freeze_spec(name, value):
    """ "" (off), "backbone", "until:LAYER" or a count N of leading layers."""
    expected = "backbone, until:LAYER or a number of layers N"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off", "0")):
        return ""
    if isinstance(value, bool):
        raise _bad(name, expected, value)
    if isinstance(value, int):
        return str(_positive_int(name, value))
    text = str(value).strip()
    if text == "backbone" or text.isdigit():
        return text
    if text.startswith("until:") and text[len("until:") :].strip():
        return "until:" + text[len("until:") :].strip()
    raise _bad(name, expected, value)


def option(
    default: Any,
    check: Callable,
    *,
    help: str,
    metavar: str = "",
    panel: str = "",
    legacy: Any = _NO_LEGACY,
    cli: bool = True,
):
    """A TrainConfig field declared with everything that derives from it.

    ``check(name, value)`` returns the coerced value or raises a one-line ConfigError naming the
    option; ``panel`` is the ``--help`` panel (one of :data:`PANELS`); ``legacy`` is the value a
    run folder written before the option existed used (a config.json without the key means that,
    not today's default); ``cli=False`` for fields the CLI spells differently (``--model-option``,
    ``--augment``) or not at all.
    """
    metadata = {"check": check, "help": help, "metavar": metavar, "panel": panel, "cli": cli}
    if legacy is not _NO_LEGACY:
        metadata["legacy"] = legacy
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (and nothing about where it is written)."""

    # what to train, on what
    model: str = option("", _text, metavar="NAME", panel="model", help="Model from `cnnlab models`.")
    dataset: str = option(
        "",
        _text,
        metavar="NAME",
        panel="data",
        help="Dataset from `cnnlab datasets` (mnist, cifar10_jpg, folder:PATH, idx:DIR, ...).",
    )
    model_options: dict = option({}, _table, cli=False, help="Model builder options (--model-option KEY=VALUE).")
    init_from: str = option(
        "",
        _optional_text,
        metavar="RUN|FILE",
        panel="model",
        legacy="",
        help="Start from the weights of a run folder, a .keras or a .weights.h5 file, matched "
        "by layer name and shape (a head of another class count, or from a run on other "
        "classes, starts afresh).",
    )
    freeze: str = option(
        "",
        _freeze_spec,
        metavar="SPEC",
        panel="model",
        legacy="",
        help="Freeze layers: backbone (all but the classifier head), until:LAYER (up to and "
        "including LAYER) or N (the first N layers with weights). Batch norm there stays in "
        "inference mode.",
    )
    val_split: Any = option(
        None,
        _val_split,
        metavar="SPEC",
        panel="data",
        help="Validation images taken from train: 0.1, 5000, first:10%, last:10000, none.",
    )
    test_split: str = option(
        "auto",
        _holdout,
        metavar="SPEC",
        panel="data",
        legacy="none",
        help="For a dataset without a test split: the images held out (stratified by class, "
        "seeded, recorded in split.json) as a test split: 0.1, 10%, 500, none; auto = 10%, "
        "and 10% for validation too unless --val-split says otherwise.",
    )
    image_size: str = option(
        "",
        _image_size,
        metavar="H[,W]",
        panel="data",
        legacy="",
        help="Resize every image to H x W (e.g. 64 or 96,128); default: the dataset's size, "
        "for folders of photos the median size capped at 128 (announced).",
    )
    resize: str = option(
        "squash",
        _choice(RESIZE_POLICIES),
        metavar="POLICY",
        panel="data",
        legacy="squash",
        help="How --image-size resizes: " + ", ".join(RESIZE_POLICIES) + ".",
    )
    skip_bad: bool = option(
        False,
        _boolean,
        panel="data",
        legacy=False,
        help="Skip image files that cannot be decoded (counted) instead of stopping.",
    )
    stream: str = option(
        "auto",
        _choice(STREAM_CHOICES),
        metavar="WHEN",
        panel="data",
        legacy="off",
        help="Decode a folder's images per batch in worker threads (prefetched, same batches and "
        "numbers as in memory) instead of loading them all: on, off, or auto (stream when the "
        "decoded images would exceed a quarter of the available memory). The run records the answer.",
    )
    inspect: bool = option(
        True,
        _boolean,
        panel="data",
        legacy=False,
        help="Check the data first (classes missing from a split, duplicates, labels, "
        "imbalance): warnings in the console, train.log and config.json.",
    )
    strict: bool = option(
        False, _boolean, panel="data", legacy=False, help="Stop when the data check warns, instead of training on."
    )
    max_train_samples: int = option(
        0, _non_negative_int, metavar="N", panel="data", help="Train on a fixed subset of N images (0 = all)."
    )
    max_eval_samples: int = option(
        0, _non_negative_int, metavar="N", panel="data", help="Validate and test on N images (0 = all)."
    )
    # input pipeline
    normalize: str = option(
        "unit",
        _choice(NORMALIZE_MODES),
        metavar="MODE",
        panel="data",
        help="Input normalisation: " + ", ".join(NORMALIZE_MODES) + ".",
    )
    pad: int = option(
        0,
        _non_negative_int,
        metavar="PIXELS",
        panel="data",
        help="Zero padding around each image (LeNet-5 on MNIST: 2).",
    )
    augmentation: dict = option({}, _augmentation, cli=False, help="Data augmentation (--augment SPEC).")
    shuffle: bool = option(True, _boolean, panel="data", help="Shuffle the training set each epoch.")
    drop_last: bool = option(False, _boolean, panel="data", help="Drop the last partial batch of each epoch.")
    sampler: str = option(
        "shuffle",
        _choice(("shuffle", "balanced")),
        metavar="NAME",
        panel="data",
        legacy="shuffle",
        help="Batch sampler: shuffle (each image once per epoch) or balanced (classes drawn "
        "equally often, images with replacement; deterministic for the seed and epoch).",
    )
    # optimisation
    optimizer: str = option(
        "adam",
        _choice(OPTIMIZERS),
        metavar="NAME",
        panel="optimisation",
        help="Optimizer: " + ", ".join(OPTIMIZERS) + ".",
    )
    lr: float = option(
        1e-3,
        _positive_number,
        metavar="RATE",
        panel="optimisation",
        help="Learning rate (peak rate for cosine / one-cycle).",
    )
    momentum: float = option(0.0, _fraction, metavar="M", panel="optimisation", help="Momentum (sgd, rmsprop).")
    nesterov: bool = option(False, _boolean, panel="optimisation", help="Nesterov momentum (sgd).")
    rho: float = option(
        0.9, _fraction, metavar="RHO", panel="optimisation", help="RMSProp decay of the squared-gradient average."
    )
    weight_decay: float = option(
        0.0, _non_negative_number, metavar="WD", panel="optimisation", help="Decoupled weight decay."
    )
    label_smoothing: float = option(
        0.0,
        _fraction,
        metavar="EPS",
        panel="optimisation",
        help="Label smoothing of the training loss, in [0, 1). Validation and test losses are plain cross-entropy.",
    )
    batch_size: int = option(32, _positive_int, metavar="N", panel="optimisation", help="Images per step.")
    clip_norm: float = option(
        0.0,
        _non_negative_number,
        metavar="N",
        panel="optimisation",
        legacy=0.0,
        help="Clip the gradient's global norm (over all weights) to N before each update (0 = off).",
    )
    ema: float = option(
        0.0,
        _ema_decay,
        metavar="DECAY",
        panel="optimisation",
        legacy=0.0,
        help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); "
        "validation, checkpoints, the final model and exports use the averaged weights (0 = off).",
    )
    lookahead: str = option(
        "off",
        _lookahead,
        metavar="SPEC",
        panel="optimisation",
        legacy="off",
        help="Lookahead averaging of the weights (airbench94): off, on, or start=E,every=K: from (1-based) epoch E, every K "
        "steps the weights move to "
        "an exponential average of themselves (decay 0.95^K x (step / total steps)^3) and each epoch ends on "
        "the average; on = airbench94's start=4,every=5. Compiled calls then end at multiples of K steps.",
    )
    whiten_bias_epochs: int = option(
        0,
        _non_negative_int,
        metavar="N",
        panel="optimisation",
        legacy=0,
        help="Train the bias of the whitening stem (the airbench model's 'whiten' layer) in the first N "
        "epochs only, then keep it fixed; airbench94 uses 3 (0 = it always trains).",
    )
    class_weight: str = option(
        "",
        _class_weight,
        metavar="balanced|0=1.0,1=2.5",
        panel="optimisation",
        legacy="",
        help="Per-class loss weights: balanced (n_samples / (n_classes x count)) or "
        "CLASS=WEIGHT pairs (classes not named weigh 1).",
    )
    backbone_lr_mult: float = option(
        1.0,
        _positive_number,
        metavar="F",
        panel="optimisation",
        legacy=1.0,
        help="Learning-rate multiplier for the layers --freeze names, once they train (after --unfreeze-at).",
    )
    l2_sp: float = option(
        0.0,
        _non_negative_number,
        metavar="ALPHA",
        panel="optimisation",
        legacy=0.0,
        help="With --init-from: the weights it loaded decay toward their loaded values instead of toward "
        "zero, by rate x ALPHA per step (L2-SP, Li et al. 2018, decoupled like --weight-decay; "
        "the fresh head keeps --weight-decay). 0 = off.",
    )
    # schedule
    schedule: str = option(
        "constant",
        _choice(SCHEDULES),
        metavar="NAME",
        panel="schedule",
        help="Learning-rate schedule: " + ", ".join(SCHEDULES) + ".",
    )
    warmup_steps: int = option(
        0, _non_negative_int, metavar="N", panel="schedule", help="Linear warm-up steps (any schedule)."
    )
    decay_every: int = option(
        0,
        _non_negative_int,
        metavar="N",
        panel="schedule",
        help="step schedule: multiply the rate by --decay-rate every N steps.",
    )
    decay_rate: float = option(0.1, _positive_number, metavar="F", panel="schedule", help="step schedule factor.")
    min_lr: float = option(
        0.0, _non_negative_number, metavar="RATE", panel="schedule", help="Final rate of cosine / one-cycle."
    )
    unfreeze_at: int = option(
        0,
        _non_negative_int,
        metavar="EPOCH",
        panel="schedule",
        legacy=0,
        help="Train the --freeze layers too from this (1-based) epoch on (0 = never).",
    )
    # budget and monitoring
    epochs: int = option(0, _non_negative_int, metavar="N", panel="budget", help="Training budget in epochs.")
    steps: int = option(
        0,
        _non_negative_int,
        metavar="N",
        panel="budget",
        help="Training budget in optimizer steps (overrides --epochs).",
    )
    validate_every: int = option(
        0, _non_negative_int, metavar="N", panel="budget", help="Also validate every N steps (0 = per epoch only)."
    )
    early_stopping: int = option(
        0,
        _non_negative_int,
        metavar="PATIENCE",
        panel="budget",
        help="Stop after PATIENCE validations without improvement (0 = off).",
    )
    monitor: str = option(
        "val_loss",
        _choice(MONITORS),
        metavar="METRIC",
        panel="budget",
        help="What the best checkpoint and early stopping watch: " + ", ".join(MONITORS) + ".",
    )
    min_delta: float = option(
        0.0, _non_negative_number, metavar="D", panel="budget", help="Smallest change counted as an improvement."
    )
    # checkpoints
    checkpoint_every: int = option(
        0,
        _non_negative_int,
        metavar="N",
        panel="checkpoints",
        help="Also checkpoint every N steps (0 = per epoch and at a new best).",
    )
    restore_best: bool = option(False, _boolean, panel="checkpoints", help="End with the best checkpoint's weights.")
    # reproducibility and execution
    seed: int = option(
        0, _any_int, metavar="N", panel="runtime", help="Random seed: weights, batch order, augmentation, dropout."
    )
    level: str = option(
        "keras",
        _choice(LEVELS),
        metavar="LEVEL",
        panel="runtime",
        help="How the network is written: " + ", ".join(LEVELS) + ".",
    )
    backend: str = option("", _optional_text, cli=False, help="The Keras backend the run used (--backend).")
    precision: str = option(
        "auto",
        _choice(PRECISIONS),
        metavar="POLICY",
        panel="runtime",
        legacy="float32",
        help="Keras dtype policy while training: "
        + ", ".join(PRECISIONS)
        + " (auto: mixed bf16 on CPUs with bf16 units, mixed float16 on GPUs).",
    )
    tta: str = option(
        "none",
        _choice(TTA_MODES),
        metavar="MODE",
        panel="runtime",
        legacy="none",
        help="Test-time augmentation for validation and test: none, flip (average with the mirror "
        "image) or flip-translate (also 1-pixel shifts; airbench's 6 views).",
    )
    steps_per_execution: int = option(
        0,
        _non_negative_int,
        metavar="N",
        panel="runtime",
        help="Optimizer steps per compiled call (0 = auto, about 0.25 s per call).",
    )
    split_batch: int = option(
        0,
        _non_negative_int,
        metavar="N",
        panel="runtime",
        legacy=1,
        help="Compute each batch as N equal parts at once, one per CPU core, and average "
        "their gradients (0 = auto: the cores' count for TensorFlow on a CPU and networks "
        "without batch norm, else 1).",
    )
    distributed: bool = option(
        False,
        _boolean,
        panel="runtime",
        legacy=False,
        help="Data parallel over several processes (and every device of each) with Keras's "
        "distribution API on JAX: --backend jax; the cluster from --coordinator / "
        "--num-processes / --process-id, $CNNLAB_*, SLURM, or `cnnlab launch`.",
    )
    # where this config came from (not options)
    recipe: str = option("", _optional_text, cli=False, help="The recipe this config came from.")
    reference: dict = option({}, _table, cli=False, help="The figure the recipe reproduces.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        """Rebuild from ``to_dict()`` output (a run's config.json), checking every value; keys the
        run predates take their :data:`LEGACY_VALUES`."""
        config = cls()
        apply_options(config, {**LEGACY_VALUES, **{k: v for k, v in data.items() if k in OPTIONS}}, source=source)
        return config


# Derived from the schema above.
OPTIONS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
LEGACY_VALUES = {name: f.metadata["legacy"] for name, f in OPTIONS.items() if "legacy" in f.metadata}
CLI_OPTIONS = {name: f for name, f in OPTIONS.items() if f.metadata["cli"]}

# Option aliases accepted by the API (and the estimator): alias -> field.
ALIASES = {"learning_rate": "lr", "batchsize": "batch_size", "patience": "early_stopping", "random_seed": "seed"}


def parse_key_values(items, flag_name: str) -> dict:
    """``["a=1", "flip"]`` -> ``{"a": 1, "flip": True}``: the one KEY=VALUE parser of every command.

    Values are TOML scalars (``true``/``false``, numbers, ``"text"``, ``[1, 2]``); a bare word is a
    string; a key alone is ``True``.
    """
    result = {}
    for item in items:
        key, sep, text = str(item).strip().partition("=")
        key = key.strip()
        if not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"{flag_name}: expected KEY=VALUE, got {item!r}")
        if not sep:
            result[key] = True
            continue
        try:
            result[key] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            result[key] = text.strip()  # a bare word: a string
    return result


def _bad(name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{flag(name)}: expected {expected}, got {value!r}")


def apply_options(config: TrainConfig, options: dict, source: str = "option") -> TrainConfig:
    """Check and set ``options`` (field or alias -> value) on ``config``; None values are skipped."""
    for key, value in options.items():
        if value is None:
            continue
        name = ALIASES.get(key, key).replace("-", "_")
        if name not in OPTIONS:
            raise ConfigError(f"{source}: unknown option {flag(key)}; see 'cnnlab train --help'")
        setattr(config, name, OPTIONS[name].metadata["check"](name, value))
    return config


def validate(config: TrainConfig) -> TrainConfig:
    """Checks between options, done once everything is set."""
    if not config.model:
        raise ConfigError("--model: required (or give --recipe NAME)")
    if not config.dataset:
        raise ConfigError("--dataset: required (or give --recipe NAME)")
    if config.epochs == 0 and config.steps == 0:
        raise ConfigError("--epochs / --steps: give a training budget (one of them > 0)")
    if config.early_stopping and config.monitor.startswith("val_") and config.val_split is None:
        raise ConfigError(f"--early-stopping: monitoring {config.monitor} needs a validation set (--val-split)")
    if config.schedule == "step" and config.decay_every == 0:
        raise ConfigError("--decay-every: the step schedule needs a positive number of steps")
    if config.level != "keras" and config.precision not in ("auto", "float32"):
        raise ConfigError(f"--precision: {config.precision} needs --level keras (the other levels train in float32)")
    if config.level != "keras" and config.tta != "none":
        raise ConfigError(f"--tta: test-time augmentation needs --level keras, not {config.level}")
    if config.split_batch > 1 and config.level != "keras":
        raise ConfigError(f"--split-batch: splitting batches across cores needs --level keras, not {config.level}")
    if config.split_batch > 1 and config.batch_size % config.split_batch:
        raise ConfigError(
            f"--split-batch: a batch of {config.batch_size} does not split into {config.split_batch} equal parts"
        )
    if config.distributed and config.restore_best:
        raise ConfigError(
            "--restore-best: not available with --distributed yet (every process would have to "
            "load the best checkpoint); evaluate the best checkpoint after the run instead"
        )
    if config.distributed and config.level != "keras":
        raise ConfigError(f"--distributed: data parallel training needs --level keras, not {config.level}")
    if config.stream == "on" and not config.dataset.startswith("folder:"):
        raise ConfigError(
            f"--stream: on reads a folder of images on disk (--dataset folder:PATH); {config.dataset} is not one"
        )
    if config.nesterov and config.optimizer != "sgd":
        raise ConfigError(f"--nesterov: only applies to --optimizer sgd, not {config.optimizer}")
    if config.level == "scratch":
        for name, used in (("ema", config.ema > 0), ("clip_norm", config.clip_norm > 0)):
            if used:
                raise ConfigError(f"{flag(name)}: not available at level scratch (use --level keras or lowlevel)")
    if config.level != "keras":
        for name, used in (
            ("class_weight", bool(config.class_weight)),
            ("init_from", bool(config.init_from)),
            ("freeze", bool(config.freeze)),
        ):
            if used:
                raise ConfigError(f"{flag(name)}: not available at level {config.level} (use --level keras)")
    for name, used in (("lookahead", config.lookahead != "off"), ("whiten_bias_epochs", config.whiten_bias_epochs > 0)):
        if used and config.level != "keras":
            raise ConfigError(f"{flag(name)}: not available at level {config.level} (use --level keras)")
        if used and config.distributed:
            raise ConfigError(f"{flag(name)}: not available with --distributed yet")
    if config.unfreeze_at and not config.freeze:
        raise ConfigError("--unfreeze-at: needs --freeze (there is nothing frozen to unfreeze)")
    if config.backbone_lr_mult != 1.0 and not config.unfreeze_at:
        raise ConfigError(
            "--backbone-lr-mult: needs --freeze and --unfreeze-at (it sets the rate of the frozen "
            "layers once they train)"
        )
    if config.l2_sp and not config.init_from:
        raise ConfigError("--l2-sp: needs --init-from (it pulls the weights toward the ones loaded from there)")
    if config.l2_sp and config.distributed:
        raise ConfigError("--l2-sp: not available with --distributed yet")
    if config.sampler == "balanced" and not config.shuffle:
        raise ConfigError("--sampler balanced: draws batches at random; it cannot be combined with --no-shuffle")
    return config


# ----------------------------------------------------------------------------- recipes


def recipes_dir() -> Path:
    """``$CNNLAB_RECIPES_DIR``, else the recipes installed with cnnlab (``cnnlab/recipes/``;
    the checkout's top-level ``recipes/`` links there)."""
    env = os.environ.get(RECIPES_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "recipes"


def list_recipes() -> list[str]:
    """Recipe names: the ``*.toml`` files of the recipes folder, without the suffix."""
    folder = recipes_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def recipe_path(name_or_file: str | os.PathLike) -> Path:
    """A recipe name from the recipes folder, or a path to a TOML file."""
    text = os.fspath(name_or_file)
    path = Path(text).expanduser()
    if text.endswith(".toml") or os.sep in text:
        if not path.is_file():
            raise ConfigError(f"--recipe: no such recipe file: {text}")
        return path
    candidate = recipes_dir() / f"{text}.toml"
    if not candidate.is_file():
        available = ", ".join(list_recipes()) or "none"
        raise ConfigError(f"--recipe: unknown recipe {text!r}; available: {available}")
    return candidate


def load_recipe(name_or_file: str | os.PathLike) -> dict:
    """Read a recipe TOML into a dict of options (its ``[reference]`` table included)."""
    path = recipe_path(name_or_file)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data.pop("description", None)
    data.setdefault("recipe", path.stem)
    return data


#: Options that are tables: one given on top of a recipe changes the recipe's keys it names and
#: keeps the others (``--model-option bn_momentum=0.4`` keeps the recipe's widths); an empty table
#: (``--augment none``) clears it.
MERGED_TABLES = ("model_options", "augmentation")


def resolve_config(model=None, dataset=None, recipe=None, **options) -> TrainConfig:
    """Recipe (if any), then ``model`` / ``dataset`` / ``options`` on top; checked."""
    config = TrainConfig()
    if recipe is not None:
        recipe_options = load_recipe(recipe)
        source = str(recipe_path(recipe))
        apply_options(config, recipe_options, source=source)
        if model is not None and model != config.model:
            # The recipe's model options belong to its own model: another model starts from its
            # builder's defaults (``--recipe fast-mnist --model lenet5`` would otherwise fail on
            # mnist_cnn's ``dropout``).
            config.model_options = {}
        for name in MERGED_TABLES:
            if isinstance(options.get(name), dict) and options[name]:
                options[name] = {**getattr(config, name), **options[name]}
    apply_options(config, {"model": model, "dataset": dataset, **options})
    return validate(config)
