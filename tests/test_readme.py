"""Every python block of the README runs alone, as written, in a fresh interpreter (a new user copies one
block at a time). Blocks preceded by ``<!-- test: slow -->`` take long (calibration + training) and run
with ``-m slow``; ``<!-- test: skip (reason) -->`` marks a block that cannot run here (a bench driver)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!--\s*test:\s*(?P<mark>[a-z]+)[^>]*-->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def readme_blocks() -> list[tuple[int, str, str]]:
    """(line number, mark, code) of every ```python block of the README."""
    text = README.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code"))
        blocks.append((line, match.group("mark") or "", match.group("code")))
    return blocks


def _params():
    params = []
    for line, mark, code in readme_blocks():
        marks = [pytest.mark.slow] if mark == "slow" else []
        if mark == "skip":
            marks.append(pytest.mark.skip(reason="README marks this block as not runnable here"))
        params.append(pytest.param(code, id=f"README.md:{line}", marks=marks))
    return params


def test_the_readme_has_python_blocks_and_most_run_by_default():
    blocks = readme_blocks()
    assert len(blocks) >= 4
    assert sum(mark == "" for _, mark, _ in blocks) >= 2, "at least two README blocks must run in the default suite"


@pytest.mark.parametrize("code", _params())
def test_readme_block_runs_alone(code, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
