"""``cnnlab plot``: learning-curve and learning-rate PNGs in the run folder."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.conftest import run_cli


def test_plot_writes_png_files(short_run):
    proc = run_cli("plot", short_run.path)
    assert proc.returncode == 0, proc.stderr
    paths = [Path(line) for line in proc.stdout.split()]
    assert {path.name for path in paths} == {"learning_curves.png", "learning_rate.png"}
    for path in paths:
        assert path.parent == short_run.path / "plots"
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 200 and image.height > 200
            image.verify()
    assert not [p for p in (short_run.path / "plots").iterdir() if ".tmp-" in p.name]
