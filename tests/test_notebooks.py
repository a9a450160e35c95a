"""Every notebook in notebooks/ runs top to bottom (small sizes, as CI runs them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


# The first notebook runs by default; the others calibrate, train or compile SAX circuits (15–30 s each
# on 2 cores) and run with ``-m slow``.
NOTEBOOK_PARAMS = [pytest.param(p, id=p.stem, marks=[] if i == 0 else [pytest.mark.slow]) for i, p in enumerate(NOTEBOOKS)]


@pytest.mark.parametrize("path", NOTEBOOK_PARAMS)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    book = nbformat.read(copy, as_version=4)
    nbclient.NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_there_are_five_notebooks():
    assert len(NOTEBOOKS) >= 5
