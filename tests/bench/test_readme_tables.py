"""The README's result tables are made from the generated reports by benchmarks/readme_tables.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "readme_tables.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def copy_of_the_reports(tmp_path: Path) -> tuple[Path, Path]:
    """The reports of docs/ and the README, copied into ``tmp_path`` to be changed there."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs, ignore=shutil.ignore_patterns("images", "reference", "tutorials"))
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    return docs, readme


def test_readme_tables_agree_with_the_reports():
    result = run("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_changed_report_changes_the_readme(tmp_path):
    docs, readme = copy_of_the_reports(tmp_path)
    results = docs / "results.md"
    text = results.read_text(encoding="utf-8")
    assert "| 99.36% | 123 |" in text
    results.write_text(text.replace("| 99.36% | 123 |", "| 98.76% | 123 |"), encoding="utf-8")

    stale = run("--check", "--readme", str(readme), "--docs", str(docs))
    assert stale.returncode == 1
    assert "differ" in stale.stdout

    assert run("--readme", str(readme), "--docs", str(docs)).returncode == 0
    rewritten = readme.read_text(encoding="utf-8")
    assert "| mnist-cnn | mnist | 99.31% | 98.76% | 123 |" in rewritten
    assert "99.36%" not in rewritten.split("<!-- generated:reference -->")[1].split("<!-- /generated:reference -->")[0]
    assert run("--check", "--readme", str(readme), "--docs", str(docs)).returncode == 0


def test_a_missing_report_is_one_line(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    result = run("--check", "--readme", str(readme), "--docs", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "results.md: report not found" in lines[0]


def test_a_network_raced_as_a_recipe_is_quoted_against_its_plain_pytorch_script(tmp_path):
    docs, readme = copy_of_the_reports(tmp_path)
    report = docs / "benchmarks.md"
    section = "\n".join(
        [
            "## Training throughput: airbench, batch 1024",
            "",
            "| contender | images/s (median) | range | vs plain Keras | vs plain PyTorch |",
            "|---|---|---|---|---|",
            "| plain PyTorch (airbench94 as written) | 171 | 167-176 | n/a | 1.00x |",
            "| cnnlab --recipe fast-cifar10-90 | 270 | 268-273 | n/a | 1.58x |",
            "",
        ]
    )
    text = report.read_text(encoding="utf-8")
    # the real report's airbench section, if it has one, replaced by this one
    text = re.sub(r"## Training throughput: airbench.*?(?=^## )", "", text, flags=re.S | re.M)
    report.write_text(text + "\n" + section, encoding="utf-8")
    assert run("--readme", str(readme), "--docs", str(docs)).returncode == 0
    assert "| airbench (1024; `--recipe fast-cifar10-90`) | - | 171 | 270 | - | 1.58x |" in readme.read_text()
