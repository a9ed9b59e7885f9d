"""The recompute's small-graph pieces equal the batch functions they stand in for, on every account and every
table of the 800-account snapshot (no Neo4j)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnn.baseline import neighbourhood_features
from gnn.build import build_risk_graph
from gnn.export import canonical_frame
from gnn.snapshot import read_snapshot_tables
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS, ExportColumn
from serving.api.recompute import baseline_row, typed_frame


def _as_read(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The frame as the receptive-field reader makes it: plain values (None for missing), rows in any order."""
    rows = frame.astype(object).where(frame.notna(), None).sample(frac=1.0, random_state=seed)
    return pd.DataFrame(rows.to_numpy().tolist(), columns=list(frame.columns))


def test_typed_frames_are_the_canonical_frames(small_snapshot: Path) -> None:
    tables, _, _ = read_snapshot_tables(small_snapshot)
    specs: list[tuple[pd.DataFrame, tuple[ExportColumn, ...], tuple[str, ...]]]
    specs = [(tables.nodes[e.node.label], e.columns, (e.node.key,)) for e in NODE_EXPORTS]
    specs += [(tables.rels[e.rel.type], e.columns, e.keys) for e in REL_EXPORTS]
    for i, (frame, columns, keys) in enumerate(specs):
        read = _as_read(frame, i)
        for part in (read, read.head(7), read.head(0)):
            pd.testing.assert_frame_equal(typed_frame(part, columns, keys), canonical_frame(part, columns, keys))
    with pytest.raises(ValueError, match="null in key"):
        typed_frame(pd.DataFrame({"src": [None], "dst": ["x"]}), REL_EXPORTS[0].columns, REL_EXPORTS[0].keys)


@pytest.mark.parametrize("cap", [500, 2, None])
def test_baseline_rows_are_the_batch_baselines_rows(small_snapshot: Path, cap: int | None) -> None:
    tables, _, _ = read_snapshot_tables(small_snapshot)
    graph = build_risk_graph(tables.nodes, tables.rels)
    batch, _ = neighbourhood_features(graph, cap)
    rows = np.stack([baseline_row(graph, p, cap) for p in range(graph.num_accounts)])
    assert rows.shape == batch.shape
    np.testing.assert_allclose(rows, batch, rtol=1e-5, atol=1e-5)  # float32 means, summed in another order
