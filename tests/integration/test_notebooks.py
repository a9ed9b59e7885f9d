"""Notebooks run top to bottom (offline: they build their own small snapshot)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
#: Per notebook: text some output must hold, and the fewest pictures it must show.
EXPECTED = {
    "researcher_loop.ipynb": (("riskiest for",), 2),  # the PR curves and the ring picture
    "research_benchmark.ipynb": (("no_graph", "| gat |"), 1),  # PR curves beside score histograms; the table
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RINGWATCH_SNAPSHOT", raising=False)
    monkeypatch.delenv("RINGWATCH_RESEARCH_DATA", raising=False)
    monkeypatch.setenv("RINGWATCH_NOTEBOOK_ACCOUNTS", "2000")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    texts, pictures = EXPECTED[path.name]
    shown = "".join(
        o.get("text", "") + "".join(o.get("data", {}).get(k, "") for k in ("text/plain", "text/markdown", "text/html"))
        for o in outputs
    )
    for text in texts:
        assert text in shown, f"{path.name} printed no {text!r}"
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= pictures, f"{path.name} drew too few pictures"


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ should hold the researcher's loop"
    assert os.path.getsize(NOTEBOOKS[0]) > 1000
