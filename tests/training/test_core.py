"""The training core on real data: one evaluation path, user callbacks, one KEY=VALUE parser."""

from __future__ import annotations

import json

import pytest

from cnnlab.training.callbacks import Callback
from cnnlab.training.config import parse_key_values
from tests.conftest import require_data

TINY = dict(
    model="lenet5", dataset="mnist", pad=2, batch_size=32, max_train_samples=256, max_eval_samples=128, verbose=False
)


@pytest.fixture
def mnist_env(monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(require_data("mnist").parent))


def test_evaluate_reports_the_test_loss_of_metrics_json_with_label_smoothing(tmp_path, mnist_env):
    """Validation, test and `cnnlab evaluate` share one definition of the loss: plain cross-entropy."""
    from cnnlab.evaluation import evaluate
    from cnnlab.training import train

    run = train(**TINY, steps=12, label_smoothing=0.2, val_split=64, runs_dir=tmp_path, name="smooth")
    metrics = json.loads((run.path / "metrics.json").read_text())
    report = evaluate(run.path, write=False)
    assert report.loss == pytest.approx(metrics["loss"], abs=1e-6)
    assert report.accuracy == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert metrics["train_loss_label_smoothing"] == 0.2
    val = evaluate(run.path, split="val", write=False)
    assert val.loss == pytest.approx(run.history[-1]["val_loss"], rel=1e-5)  # history.csv keeps 6 digits


def test_a_user_callback_sees_every_event_and_can_stop_the_run(tmp_path, mnist_env):
    from cnnlab.training import train

    class StopAtStep(Callback):
        def __init__(self):
            self.events = []

        def on_train_begin(self, trainer):
            self.events.append("begin")

        def on_chunk_end(self, trainer, logs):
            self.events.append(("chunk", trainer.state.step))

        def on_validation(self, trainer, result):
            self.events.append(("validation", result["step"]))

        def on_epoch_end(self, trainer, row):
            self.events.append(("epoch", row["epoch"]))
            if row["epoch"] == 2:
                trainer.request_stop("stopped_early", "stopped by my callback")

        def on_train_end(self, trainer):
            self.events.append(("end", trainer.state.status))

        def on_run_end(self, trainer, metrics):
            self.events.append(("run_end", metrics["steps"]))

    mine = StopAtStep()
    run = train(**TINY, epochs=5, val_split=64, steps_per_execution=4, runs_dir=tmp_path, name="cb", callbacks=[mine])
    assert mine.events[0] == "begin" and mine.events[-2:] == [("end", "stopped_early"), ("run_end", 16)]
    assert ("epoch", 2) in mine.events and ("epoch", 3) not in mine.events
    assert [e for e in mine.events if e[0] == "validation"] == [("validation", 8), ("validation", 16)]
    assert run.metrics["stopped_early"] and run.metrics["steps"] == 16  # 256 images / 32 = 8 steps per epoch


def test_model_options_parse_the_same_for_summary_and_train(tmp_path, capsys, mnist_env):
    """One KEY=VALUE parser: `false` is a boolean for `cnnlab summary` as for `cnnlab train`."""
    from cnnlab.cli.app import main
    from cnnlab.training import Run

    assert parse_key_values(["flag=true", "width=8", "rate=0.5", "name=wide", "bare"], "--model-option") == {
        "flag": True,
        "width": 8,
        "rate": 0.5,
        "name": "wide",
        "bare": True,
    }
    small = ["--model-option", "blocks=[1,1,1]", "--model-option", "growth_rate=4"]

    def summary_params(*options):
        main(["summary", "densenet_bc_100_k12", "--input-shape", "28,28,1", *small, *options])
        lines = [line for line in capsys.readouterr().out.splitlines() if "params" in line.lower()]
        return lines[0]

    assert summary_params("--model-option", "bottleneck=false") != summary_params()  # "false" is not truthy text
    main(
        [
            "train",
            "--model",
            "densenet_bc_100_k12",
            "--dataset",
            "mnist",
            *small,
            "--model-option",
            "bottleneck=false",
            "--steps",
            "1",
            "--max-train-samples",
            "32",
            "--max-eval-samples",
            "16",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "d",
            "-q",
        ]
    )
    assert Run.load(tmp_path / "d").train_config.model_options["bottleneck"] is False
