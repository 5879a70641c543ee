"""Tutorial chapters 5-8 run as plain scripts at the small budget."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import run_chapter

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("chapter", ["ch05", "ch06", "ch07", "ch08"])
def test_chapter_runs_as_a_script(chapter, tmp_path):
    proc = run_chapter(chapter, tmp_path)
    assert proc.returncode == 0, f"{chapter} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "budget small" in proc.stdout, proc.stdout[-2000:]
    figures = list((tmp_path / "out" / chapter).rglob("*.png"))
    assert figures, f"{chapter} drew no figure"
