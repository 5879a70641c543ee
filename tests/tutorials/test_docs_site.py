"""The documentation site builds with --strict: a broken link, a page missing from the navigation or
a docstring mkdocstrings cannot render fails the build (and this test), as it fails `make docs`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=f"{module} not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=tmp_path,  # mkdocs-jupyter's conversion cache goes here, not into the checkout
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert (site / "index.html").is_file()
    chapter = (site / "tutorials" / "ch02_convolution_numpy" / "index.html").read_text(encoding="utf-8")
    assert "Convolution from scratch in NumPy" in chapter and "conv_output_size" in chapter
    reference = (site / "reference" / "scratch" / "index.html").read_text(encoding="utf-8")
    assert "numerical_gradient" in reference
