"""Run folders whose files were damaged, truncated, replaced or edited: one line naming the file.

Each file of a finished run (config.json, the checkpoint pointers, metrics.json, history.csv,
validation.csv, model.keras, a checkpoint's state.npz and model.keras) is mutated in many ways
(byte-level damage, a wrong JSON shape, a field with the wrong type or range, a FIFO or folder
in its place) and read by the commands that use it. Every case must end with exit 2 and one
``cnnlab: error:`` line naming that file, with every file of the folder left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

# ----------------------------------------------------------------------------- byte-level damage


def _empty(path):
    path.write_bytes(b"")


def _garbage(path):
    path.write_bytes(bytes(range(256)) * 4)


def _not_utf8(path):
    path.write_bytes(b'{"train": "\xff\xfe"}')


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _json_list(path):
    path.write_text("[1, 2, 3]\n")


def _json_string(path):
    path.write_text('"config"\n')


def _deep_nesting(path):
    path.write_text("[" * 100_000 + "]" * 100_000)


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _folder(path):
    path.unlink()
    path.mkdir()


def _device(path):
    path.unlink()
    path.symlink_to("/dev/zero")


def _dangling(path):
    path.unlink()
    path.symlink_to(path.parent / "nowhere")


BYTE_MUTATIONS = {
    f.__name__.strip("_"): f
    for f in (
        _empty,
        _garbage,
        _not_utf8,
        _truncated,
        _json_list,
        _json_string,
        _deep_nesting,
        _fifo,
        _folder,
        _device,
        _dangling,
    )
}


# ----------------------------------------------------------------------------- field-level edits


def _edit(path: Path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _set(dotted, value):
    def change(document):
        *parents, last = dotted.split(".")
        target = document
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _drop(dotted):
    def change(document):
        *parents, last = dotted.split(".")
        target = document
        for key in parents:
            target = target[key]
        del target[last]

    return change


CONFIG_EDITS = {
    "no-train": _drop("train"),
    "train-list": _set("train", [1, 2]),
    "model-number": _set("train.model", 5),
    "dataset-empty": _set("train.dataset", ""),
    "lr-text": _set("train.lr", "fast"),
    "batch-negative": _set("train.batch_size", -32),
    "seed-text": _set("train.seed", "lucky"),
    "no-class-names": _drop("class_names"),
    "class-names-empty": _set("class_names", []),
    "class-names-numbers": _set("class_names", list(range(10))),
    "num-classes-mismatch": _set("num_classes", 7),
    "input-shape-short": _set("input_shape", [28, 28]),
    "input-shape-wrong": _set("input_shape", [32, 32, 1]),
    "input-shape-huge": _set("input_shape", [10**9, 10**9, 1]),
    "no-preprocessing": _drop("preprocessing"),
    "channels-2": _set("preprocessing.channels", 2),
    "normalize-unknown": _set("preprocessing.normalize", "zscore"),
    "image-size-text": _set("preprocessing.image_size", "28x28"),
    "pad-negative": _set("preprocessing.pad", -2),
    "standardize-without-stats": _set("preprocessing.normalize", "standardize"),
    "mean-text": _set("preprocessing.mean", "zero"),
    "schema-future": _set("schema", 99),
    "fingerprint-number": _set("data_fingerprint", 5),
    "dataset-name-number": _set("dataset.name", 3),
}

POINTER_EDITS = {
    "no-dir": _drop("dir"),
    "dir-escapes": _set("dir", "../../outside"),
    "dir-missing": _set("dir", "ckpt-00000099-e0009-b000000"),
    "step-negative": _set("step", -1),
    "step-text": _set("step", "six"),
    "epoch-float": _set("epoch", 1.5),
    "history-number": _set("history", 5),
    "history-loss-text": lambda d: d["history"][0].__setitem__("loss", "low"),
    "history-row-list": _set("history", [[1, 2, 3]]),
    "status-unknown": _set("status", "exploded"),
    "seconds-infinite": _set("seconds", 1e999),
    "best-value-text": _set("best_value", "good"),
}

METRICS_EDITS = {
    "accuracy-text": _set("accuracy", "high"),
    "split-unknown": _set("split", "train"),
    "steps-negative": _set("steps", -6),
    "stopped-early-text": _set("stopped_early", "no"),
}


def _culprit(run: Path, relative: str) -> Path:
    if relative.startswith("CKPT/"):
        pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
        return run / "checkpoints" / pointer["dir"] / relative[5:]
    return run / relative


# ----------------------------------------------------------------------------- config.json, read by every command


def _commands(run: Path, tmp: Path, image: Path) -> dict[str, list]:
    return {
        "evaluate": ["evaluate", run],
        "predict": ["predict", run, image],
        "export": ["export", run, "--format", "keras", "--out", tmp / "out" / "m.keras"],
        "plot": ["plot", run],
        "resume": ["train", "--resume", run, "--steps", "8"],
    }


@pytest.fixture
def image(tmp_path):
    from PIL import Image

    path = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(path)
    return path


ONE_READER = ("json_string", "deep_nesting", "dangling", "device", "not_utf8")  # evaluate alone suffices
CONFIG_CASES = [
    (command, mutation)
    for mutation in sorted(BYTE_MUTATIONS)
    for command in ("evaluate", "predict", "export", "plot", "resume")
    if command == "evaluate" or mutation not in ONE_READER
]


@pytest.mark.parametrize(("command", "mutation"), CONFIG_CASES)
def test_damaged_config(run_copy, tmp_path, image, clean_error, mutation, command):
    path = run_copy / "config.json"
    BYTE_MUTATIONS[mutation](path)
    clean_error(
        _commands(run_copy, tmp_path, image)[command],
        [path if mutation != "dangling" else run_copy],
        protect=[run_copy, image],
    )


@pytest.mark.parametrize("edit", sorted(CONFIG_EDITS))
def test_edited_config(run_copy, tmp_path, image, clean_error, edit):
    path = run_copy / "config.json"
    _edit(path, CONFIG_EDITS[edit])
    clean_error(["evaluate", run_copy], [path], protect=[run_copy])


@pytest.mark.parametrize("edit", ["lr-text", "class-names-numbers", "input-shape-wrong", "channels-2", "schema-future"])
def test_edited_config_on_predict_and_resume(run_copy, tmp_path, image, clean_error, edit):
    path = run_copy / "config.json"
    _edit(path, CONFIG_EDITS[edit])
    clean_error(["predict", run_copy, image], [path], protect=[run_copy, image])
    clean_error(["train", "--resume", run_copy, "--steps", "8"], [path], protect=[run_copy])


# ----------------------------------------------------------------------------- checkpoint pointers


@pytest.mark.parametrize("mutation", sorted(BYTE_MUTATIONS))
@pytest.mark.parametrize("kind", ["latest", "best"])
def test_damaged_pointer(run_copy, clean_error, mutation, kind):
    path = run_copy / "checkpoints" / f"{kind}.json"
    BYTE_MUTATIONS[mutation](path)
    needle = path if mutation != "dangling" else "has no"
    clean_error(
        ["evaluate", run_copy, "--checkpoint", kind],
        [needle] if mutation != "dangling" else [run_copy],
        protect=[run_copy],
    )


@pytest.mark.parametrize("edit", sorted(POINTER_EDITS))
def test_edited_pointer(run_copy, clean_error, edit):
    path = run_copy / "checkpoints" / "latest.json"
    _edit(path, POINTER_EDITS[edit])
    clean_error(["evaluate", run_copy, "--checkpoint", "latest"], [path], protect=[run_copy])


@pytest.mark.parametrize("edit", ["step-text", "history-loss-text", "dir-escapes", "status-unknown"])
def test_edited_pointer_on_resume(run_copy, clean_error, edit):
    path = run_copy / "checkpoints" / "latest.json"
    _edit(path, POINTER_EDITS[edit])
    clean_error(["train", "--resume", run_copy, "--steps", "8"], [path], protect=[run_copy])


# ----------------------------------------------------------------------------- history.csv, validation.csv (plot)

CSV_DAMAGE = {
    "text-in-loss": lambda text: text.replace("\n1,6,", "\n1,6,low,", 1).replace(",low,2.", ",low,", 1),
    "missing-column": lambda text: text.replace("epoch,", "", 1),
    "extra-cell": lambda text: text.rstrip("\n") + ",9\n",
    "negative-epoch": lambda text: text.replace("\n1,", "\n-1,", 1),
    "header-only-junk": lambda text: "a,b,c\n1,2,3\n",
    "quote-unclosed": lambda text: text + '"1,2\n',
}


@pytest.mark.parametrize("damage", sorted(CSV_DAMAGE))
def test_edited_history(run_copy, clean_error, damage):
    path = run_copy / "history.csv"
    path.write_text(CSV_DAMAGE[damage](path.read_text()))
    clean_error(["plot", run_copy], [path], protect=[run_copy])


@pytest.mark.parametrize("mutation", ["empty", "garbage", "not_utf8", "fifo", "folder", "device"])
def test_damaged_history(run_copy, clean_error, mutation):
    path = run_copy / "history.csv"
    BYTE_MUTATIONS[mutation](path)
    clean_error(["plot", run_copy], [path] if mutation != "empty" else [run_copy], protect=[run_copy])


# ----------------------------------------------------------------------------- metrics.json (read by results)


@pytest.mark.parametrize("mutation", ["garbage", "json_list", "fifo", "truncated", *sorted(METRICS_EDITS)])
def test_damaged_metrics(run_copy, tmp_path, clean_error, mutation):
    from cnnlab.errors import RunError
    from cnnlab.training import Run

    path = run_copy / "metrics.json"
    if mutation in BYTE_MUTATIONS:
        BYTE_MUTATIONS[mutation](path)
    else:
        _edit(path, METRICS_EDITS[mutation])
    with pytest.raises(RunError, match="metrics.json"):
        _ = Run.load(run_copy).metrics
    _as_faithful_recipe_run(run_copy / "config.json", "softmax-mnist")  # results reads such runs' metrics
    clean_error(
        ["results", "--runs-dir", run_copy.parent, "--out", tmp_path / "results.md"], [path], protect=[run_copy]
    )
    assert not (tmp_path / "results.md").exists()


def _as_faithful_recipe_run(config: Path, recipe_name: str) -> None:
    from cnnlab.training.config import TrainConfig, apply_options, load_recipe
    from cnnlab.training.results import FREE_OPTIONS

    recipe = {k: v for k, v in load_recipe(recipe_name).items() if k not in FREE_OPTIONS}
    expected = apply_options(TrainConfig(), recipe).to_dict()

    def change(document):
        document["train"].update(
            {k: expected[k] for k in recipe}, recipe=recipe_name, max_train_samples=0, max_eval_samples=0
        )

    _edit(config, change)


# ----------------------------------------------------------------------------- model files and checkpoint state

MODEL_FILES = {"model.keras": ["evaluate"], "CKPT/model.keras": ["evaluate", "--checkpoint", "latest"]}


@pytest.mark.parametrize("mutation", ["empty", "garbage", "truncated", "fifo", "folder", "device"])
@pytest.mark.parametrize("which", sorted(MODEL_FILES))
def test_damaged_model(run_copy, clean_error, mutation, which):
    path = _culprit(run_copy, which)
    BYTE_MUTATIONS[mutation](path)
    command = MODEL_FILES[which]
    clean_error([command[0], run_copy, *command[1:]], [path], protect=[run_copy])


@pytest.mark.parametrize("mutation", ["empty", "garbage", "truncated", "fifo", "folder", "single-array"])
def test_damaged_state_on_resume(run_copy, clean_error, mutation):
    import numpy as np

    path = _culprit(run_copy, "CKPT/state.npz")
    if mutation == "single-array":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    else:
        BYTE_MUTATIONS[mutation](path)
    clean_error(
        ["train", "--resume", run_copy, "--steps", "8"],
        [path],
        protect=[run_copy / "config.json", run_copy / "checkpoints", run_copy / "model.keras"],
    )


def test_state_of_another_shape_on_resume(run_copy, clean_error):
    import numpy as np

    path = _culprit(run_copy, "CKPT/state.npz")
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    first = sorted(arrays)[0]
    arrays[first] = np.zeros((3, 3, 3), arrays[first].dtype)
    np.savez(path, **arrays)
    clean_error(
        ["train", "--resume", run_copy, "--steps", "8"],
        [run_copy],
        protect=[run_copy / "config.json", run_copy / "checkpoints", run_copy / "model.keras"],
    )


def test_model_of_another_run(run_copy, tmp_path, clean_error):
    """A valid .keras file of a network with another input size: refused, naming the file."""
    from cnnlab.models import create_model

    create_model("softmax", input_shape=(32, 32, 1), num_classes=10).save(tmp_path / "other.keras")
    shutil.copy(tmp_path / "other.keras", run_copy / "model.keras")
    clean_error(["evaluate", run_copy], [run_copy / "model.keras", "input_shape"], protect=[run_copy])


def test_non_finite_weights(run_copy, clean_error, image):
    """Finding 11: a model whose weights became NaN gives one line, not a crash deep in the metrics."""
    import numpy as np

    from cnnlab.training import Run

    model = Run.load(run_copy).model()
    weights = model.get_weights()
    weights[0][...] = np.nan
    model.set_weights(weights)
    model.save(run_copy / "model.keras")
    for command in (["evaluate", run_copy], ["predict", run_copy, image], ["export", run_copy, "--format", "keras"]):
        clean_error(command, [run_copy / "model.keras", "not finite"], protect=[run_copy, image])


# ----------------------------------------------------------------------------- the other entries of a run folder


def _cell(index: int, value: str):
    def change(text: str) -> str:
        header, first, *rest = text.splitlines()
        cells = first.split(",")
        cells[index] = value
        return "\n".join([header, ",".join(cells), *rest]) + "\n"

    return change


VALIDATION_DAMAGE = {
    "text-in-val-loss": _cell(2, "high"),
    "negative-step": _cell(0, "-6"),
    "missing-column": CSV_DAMAGE["missing-column"],
    "extra-cell": CSV_DAMAGE["extra-cell"],
    "quote-unclosed": CSV_DAMAGE["quote-unclosed"],
}


@pytest.mark.parametrize("mutation", ["garbage", "not_utf8", "fifo", "folder", *sorted(VALIDATION_DAMAGE)])
def test_damaged_validation_csv(run_copy, mutation):
    """validation.csv is read through the API (Run.validations): the same one-line RunError naming it."""
    from cnnlab.errors import RunError
    from cnnlab.training import Run

    path = run_copy / "validation.csv"
    if mutation in BYTE_MUTATIONS:
        BYTE_MUTATIONS[mutation](path)
    else:
        path.write_text(VALIDATION_DAMAGE[mutation](path.read_text()))
    with pytest.raises(RunError, match=str(path)) as caught:
        _ = Run.load(run_copy).validations
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("mutation", ["fifo", "folder", "device"])
def test_damaged_lock_file(run_copy, clean_error, mutation):
    path = run_copy / ".lock"
    if not path.exists():
        path.write_text("")
    BYTE_MUTATIONS[mutation](path)
    clean_error(["train", "--resume", run_copy, "--steps", "8"], [path], protect=[run_copy])


@pytest.mark.parametrize(("entry", "command"), [("plots", "plot"), ("plots", "evaluate"), ("export", "export")])
def test_output_folder_replaced_by_a_file(run_copy, clean_error, entry, command):
    (run_copy / entry).mkdir(exist_ok=True)
    for child in (run_copy / entry).iterdir():
        child.unlink()
    (run_copy / entry).rmdir()
    (run_copy / entry).write_text("not a folder\n")
    clean_error([command, run_copy], [run_copy / entry], protect=[run_copy])
