"""Commands that use a finished run: ``evaluate``, ``predict``, ``plot``, ``export``; and ``demo``.

Each command is one call into the Python API (:mod:`cnnlab.evaluation`, :mod:`cnnlab.inference`,
:mod:`cnnlab.visualization.plots`) plus printing. Only Typer and the standard library are imported
at module level, so ``cnnlab --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

CHECKPOINT_HELP = "Which weights: final (model.keras), best or latest checkpoint."

# The demo's network and budget: LeNet-5 takes the 28x28 digits padded to 32x32 as in LeCun et al.
# 1998. The test split (the last 20% of the digits) comes from other writers than most of the
# training images; small shifts, rotations and zooms help it (12 epochs, seed 0: test accuracy
# 0.908 without augmentation, 0.919 and 0.933 in two runs with it; see docs/usage.md).
DEMO_MODEL = "lenet5"
DEMO_DATASET = "digits"
DEMO_EPOCHS = 12
DEMO_OPTIONS = dict(
    pad=2,
    val_split=0.1,
    batch_size=32,
    optimizer="adam",
    lr=1e-3,
    seed=0,
    augmentation={"shift": 0.1, "rotation": 10, "zoom": 0.1},
)
DEMO_DIGITS = 2  # test digits written to PNG files and predicted


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command()(predict)
    app.command()(plot)
    app.command()(export)
    app.command()(demo)


def evaluate(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder, e.g. runs/lenet5-mnist-..."),
    split: str = typer.Option("test", "--split", metavar="test|val", help="Which split of the run's dataset."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    checkpoint: str = typer.Option("final", "--checkpoint", metavar="final|best|latest", help=CHECKPOINT_HELP),
) -> None:
    """Loss, accuracy, top-5, per-class precision/recall/F1 and the confusion matrix of a run.

    Also writes plots/confusion_matrix.png, plots/misclassified.png and evaluation-SPLIT.json
    into the run folder.
    """
    from cnnlab.evaluation import evaluate as evaluate_run

    report = evaluate_run(run, split=split, batch_size=batch_size, which=checkpoint)
    typer.echo(json.dumps(report.to_dict(), indent=2) if json_output else report.summary())


def predict(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder."),
    files: List[Path] = typer.Argument(..., metavar="FILE_OR_DIR...", help="Image files, or folders of them."),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to show per image."),
    json_output: bool = typer.Option(
        False, "--json", help='Print a JSON list of {"file", "top": [{"class", "probability"}]}.'
    ),
    checkpoint: str = typer.Option("final", "--checkpoint", metavar="final|best|latest", help=CHECKPOINT_HELP),
    invert: bool = typer.Option(False, "--invert", help="Invert the images first (dark digits on light paper)."),
) -> None:
    """Classify image files with a run's model, preprocessed exactly as in training.

    Warns (on stderr) about images unlike the training images: colour or size, mean intensity, or
    polarity (dark strokes on light paper for a model trained on light strokes on black: --invert).
    """
    from cnnlab.inference import predict as predict_files
    from cnnlab.inference.prediction import format_predictions

    predictions = predict_files(run, files, top_k=top_k, which=checkpoint, invert=invert)
    for prediction in predictions:
        for warning in prediction.get("warnings", []):
            typer.echo(f"cnnlab: warning: {prediction['file']}: {warning}", err=True)
    typer.echo(json.dumps(predictions, indent=2) if json_output else format_predictions(predictions))


def plot(run: Path = typer.Argument(..., metavar="RUN", help="Run folder.")) -> None:
    """Learning curves (accuracy and loss, train and validation) and the learning-rate schedule, as PNG."""
    from cnnlab.visualization.plots import plot_run

    for path in plot_run(run):
        typer.echo(str(path))


def export(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder."),
    format: str = typer.Option("keras", "--format", metavar="keras|saved_model|onnx", help="Export format."),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        metavar="PATH",
        help="Where to write it. Default: RUN/export/model.keras, RUN/export/saved_model or RUN/export/model.onnx.",
    ),
    checkpoint: str = typer.Option("final", "--checkpoint", metavar="final|best|latest", help=CHECKPOINT_HELP),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing file of another kind at --out (never the run's own files)."
    ),
) -> None:
    """Export a run's model with a softmax-probability output, plus a JSON sidecar (class names, preprocessing)."""
    from cnnlab.inference import export as export_run

    exported = export_run(run, format=format, out=out, which=checkpoint, force=force)
    typer.echo(f"{exported.format}: {exported.path}")
    typer.echo(f"metadata: {exported.metadata}")


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", metavar="DIR", help="Folder for all the demo writes."),
    epochs: int = typer.Option(DEMO_EPOCHS, "--epochs", help="Training epochs."),
) -> None:
    """Offline tour on scikit-learn's digits: sample grid, train a small CNN, evaluate, plot, predict."""
    from cnnlab.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    say = typer.echo
    say(f"cnnlab demo: the whole workflow on scikit-learn's bundled digits (no download); files go to {out}/")

    data = _demo_data(out, say)
    run = _demo_train(out, epochs, say)
    _demo_evaluate(run, say)
    _demo_plot(run, say)
    _demo_predict(run, data, out, say)

    minutes, seconds = divmod(time.perf_counter() - started, 60)
    say("")
    say(f"Done in {int(minutes)} min {seconds:.0f} s. Try next:")
    say(f"  cnnlab evaluate {run.path} --json")
    say(f"  cnnlab predict {run.path} {out}/digit-*.png --top-k 3")
    say(f"  cnnlab export {run.path} --format onnx")


def _step(say, number: int, title: str) -> None:
    say("")
    say(f"[{number}/5] {title}")


def _demo_data(out: Path, say):
    from cnnlab.data import load_dataset
    from cnnlab.visualization.grid import image_grid

    _step(say, 1, "Data")
    data = load_dataset(DEMO_DATASET, val_split=DEMO_OPTIONS["val_split"])
    height, width, channels = data.input_shape
    say(
        f"  {data.name}: {len(data.train)} training, {len(data.val)} validation, {len(data.test)} test images "
        f"of {height}x{width}x{channels}, {data.num_classes} classes"
    )
    grid = image_grid(
        data.train.x[:32],
        [data.class_names[y] for y in data.train.y[:32]],
        out / "digits-samples.png",
        columns=8,
        suptitle="digits: training samples",
    )
    say(f"  sample grid -> {grid}")
    return data


def _demo_train(out: Path, epochs: int, say):
    from cnnlab.training import train

    options = DEMO_OPTIONS
    augmentation = ", ".join(f"{key} {value}" for key, value in options["augmentation"].items())
    _step(
        say,
        2,
        f"Training {DEMO_MODEL} for {epochs} epochs (Adam {options['lr']:g}, batch {options['batch_size']}, "
        f"seed {options['seed']}, augmentation: {augmentation})",
    )
    run = train(DEMO_MODEL, DEMO_DATASET, runs_dir=out / "runs", epochs=epochs, **options)
    say(f"  run folder -> {run.path}")
    return run


def _demo_evaluate(run, say) -> None:
    from cnnlab.evaluation import evaluate

    _step(say, 3, "Evaluation on the test split")
    report = evaluate(run)
    say(f"  {report.num_examples} test images: accuracy {report.accuracy:.4f}, loss {report.loss:.4f}")
    say("  confusion matrix (rows: true digit, columns: predicted digit):")
    for line in report.confusion_table().splitlines():
        say(f"    {line}")
    for kind, path in report.files.items():
        say(f"  {kind} -> {path}")


def _demo_plot(run, say) -> None:
    from cnnlab.visualization.plots import plot_run

    _step(say, 4, "Learning curves and learning-rate schedule")
    for path in plot_run(run):
        say(f"  {path}")


def _demo_predict(run, data, out: Path, say) -> None:
    from PIL import Image

    from cnnlab.inference import predict

    _step(say, 5, f"Prediction on {DEMO_DIGITS} test digits saved as PNG files")
    paths = []
    for i in range(DEMO_DIGITS):
        image, label = data.test.x[i], data.class_names[data.test.y[i]]
        paths.append(out / f"digit-{i + 1}-true-{label}.png")
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(paths[-1])
    for prediction in predict(run, paths, top_k=3):
        top = ", ".join(f"{t['class']} ({t['probability']:.3f})" for t in prediction["top"])
        say(f"  {prediction['file']}: {top}")
