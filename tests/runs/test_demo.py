"""``cnnlab demo`` (what ``make demo`` runs): every step runs and leaves its files where it says."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_runs_every_step(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", out, "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    for step in range(1, 6):
        assert f"[{step}/5]" in proc.stdout
    (run,) = (out / "runs").iterdir()
    report = json.loads((run / "evaluation-test.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == report["num_examples"]

    figures = [
        out / "digits-samples.png",
        run / "plots" / "confusion_matrix.png",
        run / "plots" / "learning_curves.png",
        run / "plots" / "learning_rate.png",
    ]
    digits = sorted(out.glob("digit-*.png"))
    assert len(digits) == 2
    for png in figures + digits:
        with Image.open(png) as image:
            image.verify()
    for figure in figures:
        assert str(figure) in proc.stdout
    for digit in digits:  # each prediction line: the file, then the most probable class first
        assert re.search(rf"{re.escape(str(digit))}: \d \(\d\.\d+\)", proc.stdout)
