"""Every tutorial chapter runs as a plain script at the small budget (chapters 1-4; 5-8 are in
test_tutorial_scripts_cifar.py, so that pytest-xdist's --dist loadfile spreads them over workers)."""

from __future__ import annotations

import pytest

from tests.tutorials.helpers import CHAPTERS, run_chapter

pytestmark = pytest.mark.slow


def test_every_chapter_is_tested():
    assert sorted(CHAPTERS) == [f"ch{n:02d}" for n in range(1, 9)], "a chapter was added or renamed: test it"


@pytest.mark.parametrize("chapter", ["ch01", "ch02", "ch03", "ch04"])
def test_chapter_runs_as_a_script(chapter, tmp_path):
    proc = run_chapter(chapter, tmp_path)
    assert proc.returncode == 0, f"{chapter} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "budget small" in proc.stdout, proc.stdout[-2000:]
    out = tmp_path / "out" / chapter
    assert out.is_dir() and any(out.iterdir()), f"{chapter} wrote nothing under {out}"
