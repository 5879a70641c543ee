"""A chapter converted to a notebook by Jupytext runs in a Jupyter kernel (nbclient), as a learner
opening it in Jupyter would run it; the rendered site shows the same notebook."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import CHAPTERS, require_chapter_data, tutorial_env

pytestmark = pytest.mark.slow


def test_chapter_runs_as_a_notebook(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext", reason="jupytext not installed (pip install -e '.[docs]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e '.[docs]')")
    pytest.importorskip("ipykernel", reason="ipykernel not installed (pip install -e '.[docs]')")
    require_chapter_data("ch02")
    for key, value in tutorial_env(tmp_path / "out").items():
        monkeypatch.setenv(key, value)  # the kernel process inherits this environment
    monkeypatch.delenv("MPLBACKEND")  # the kernel's own inline backend, as in Jupyter

    notebook = jupytext.read(CHAPTERS["ch02"])
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 5
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "matches scipy.signal.convolve2d" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure was not displayed inline"
    assert (tmp_path / "out" / "ch02" / "filters.png").is_file()
