"""The training configuration: one flat dataclass, resolved from a recipe plus overrides.

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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError

LEVELS = ("keras", "scratch", "lowlevel")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "one-cycle")
NORMALIZE_MODES = ("unit", "standardize", "center", "none")
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
TTA_MODES = ("none", "flip", "flip-translate")
AUGMENTATION_KEYS = ("shift", "zoom", "rotation", "flip", "crop_padding", "fill")

RECIPES_DIR_ENV = "CNNLAB_RECIPES_DIR"


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (and nothing about where it is written)."""

    # what to train, on what
    model: str = ""
    dataset: str = ""
    model_options: dict = field(default_factory=dict)
    val_split: Any = None  # fraction, count, "first:10%", "last:10000", or None (none)
    max_train_samples: int = 0  # 0 = all; small slices for tests and smoke runs
    max_eval_samples: int = 0  # cap on validation and test examples; 0 = all
    # input pipeline
    normalize: str = "unit"
    pad: int = 0
    augmentation: dict = field(default_factory=dict)
    shuffle: bool = True
    drop_last: bool = False
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    rho: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_every: int = 0  # step schedule: multiply the rate by decay_rate every N steps
    decay_rate: float = 0.1
    min_lr: float = 0.0  # floor of cosine / one-cycle
    # budget and monitoring
    batch_size: int = 32
    epochs: int = 0
    steps: int = 0  # when > 0, train for exactly this many optimizer steps (overrides epochs)
    validate_every: int = 0  # also validate every N steps; 0 = once per epoch
    checkpoint_every: int = 0  # also checkpoint every N steps; 0 = per epoch and at validations
    early_stopping: int = 0  # patience in validations; 0 = off
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best: bool = False
    # reproducibility and execution
    seed: int = 0
    level: str = "keras"
    backend: str = ""  # filled in with the backend actually used
    precision: str = "auto"  # Keras dtype policy while training; "auto" is resolved when the run starts
    tta: str = "none"  # test-time augmentation of validation and test: none, flip, flip-translate
    steps_per_execution: int = 0  # optimizer steps per compiled call; 0 = auto (about 0.25 s per call)
    split_batch: int = 0  # parts of each batch computed at once on the CPU cores; 0 = auto, resolved at the start
    # where this config came from (not an option)
    recipe: str = ""
    reference: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "TrainConfig":
        """Rebuild from ``to_dict()`` output (a run's config.json), checking every value."""
        config = cls()
        apply_options(config, {k: v for k, v in data.items() if k in _FIELDS}, source=source)
        return config

    @property
    def total_steps_known(self) -> bool:
        return self.steps > 0


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}

# Options added after run folders already existed, with what those runs used: a config.json
# without the key means this value, not today's default.
LEGACY_VALUES = {"precision": "float32", "tta": "none", "split_batch": 1}

# Option aliases accepted by the API (and the estimator): alias -> field.
ALIASES = {"learning_rate": "lr", "batchsize": "batch_size", "patience": "early_stopping", "random_seed": "seed"}


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


def _augmentation(name, value):
    table = _table(name, value)
    unknown = sorted(set(table) - set(AUGMENTATION_KEYS))
    if unknown:
        raise ConfigError(f"--augment: unknown key {unknown[0]!r}; expected {', '.join(AUGMENTATION_KEYS)}")
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


_CHECKS = {
    "model": _text,
    "dataset": _text,
    "model_options": _table,
    "val_split": _val_split,
    "max_train_samples": _non_negative_int,
    "max_eval_samples": _non_negative_int,
    "normalize": _choice(NORMALIZE_MODES),
    "pad": _non_negative_int,
    "augmentation": _augmentation,
    "shuffle": _boolean,
    "drop_last": _boolean,
    "optimizer": _choice(OPTIMIZERS),
    "lr": _positive_number,
    "momentum": _fraction,
    "nesterov": _boolean,
    "rho": _fraction,
    "weight_decay": _non_negative_number,
    "label_smoothing": _fraction,
    "schedule": _choice(SCHEDULES),
    "warmup_steps": _non_negative_int,
    "decay_every": _non_negative_int,
    "decay_rate": _positive_number,
    "min_lr": _non_negative_number,
    "batch_size": _positive_int,
    "epochs": _non_negative_int,
    "steps": _non_negative_int,
    "validate_every": _non_negative_int,
    "checkpoint_every": _non_negative_int,
    "early_stopping": _non_negative_int,
    "monitor": _choice(MONITORS),
    "min_delta": _non_negative_number,
    "restore_best": _boolean,
    "seed": _any_int,
    "level": _choice(LEVELS),
    "backend": _optional_text,
    "precision": _choice(PRECISIONS),
    "tta": _choice(TTA_MODES),
    "steps_per_execution": _non_negative_int,
    "split_batch": _non_negative_int,
    "recipe": _optional_text,
    "reference": _table,
}


def _bad(name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{flag(name)}: expected {expected}, got {value!r}")


def apply_options(config: TrainConfig, options: dict, source: str = "option") -> TrainConfig:
    """Check and set ``options`` (field or alias -> value) on ``config``; None values are skipped."""
    for key, value in options.items():
        if value is None:
            continue
        name = ALIASES.get(key, key).replace("-", "_")
        if name not in _CHECKS:
            raise ConfigError(f"{source}: unknown option {flag(key)}; see 'cnnlab train --help'")
        setattr(config, name, _CHECKS[name](name, value))
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
        raise ConfigError(f"--split-batch: a batch of {config.batch_size} does not split into "
                          f"{config.split_batch} equal parts")
    if config.nesterov and config.optimizer != "sgd":
        raise ConfigError(f"--nesterov: only applies to --optimizer sgd, not {config.optimizer}")
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


def resolve_config(model=None, dataset=None, recipe=None, **options) -> TrainConfig:
    """Recipe (if any), then ``model`` / ``dataset`` / ``options`` on top; checked."""
    config = TrainConfig()
    if recipe is not None:
        recipe_options = load_recipe(recipe)
        source = str(recipe_path(recipe))
        apply_options(config, recipe_options, source=source)
    apply_options(config, {"model": model, "dataset": dataset, **options})
    return validate(config)
