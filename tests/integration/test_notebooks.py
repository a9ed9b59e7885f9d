"""Notebooks run top to bottom (offline: they build their own small snapshot)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RINGWATCH_SNAPSHOT", raising=False)
    monkeypatch.setenv("RINGWATCH_NOTEBOOK_ACCOUNTS", "2000")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("riskiest for" in o.get("text", "") for o in outputs), "the ring inspection did not print"
    assert any("image/png" in o.get("data", {}) for o in outputs), "the evaluation drew no picture"


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ should hold the researcher's loop"
    assert os.path.getsize(NOTEBOOKS[0]) > 1000
