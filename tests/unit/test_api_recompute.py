"""The recompute's small-graph pieces equal the batch functions they stand in for, on every account and every
table of the 800-account snapshot (no Neo4j)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnn.baseline import neighbourhood_features
from gnn.build import build_risk_graph, index_graph
from gnn.export import canonical_frame
from gnn.snapshot import read_snapshot_tables
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS, ExportColumn
from serving.api.recompute import baseline_row, index_typed, typed_rows


def _as_read(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The frame as the receptive-field reader makes it: plain values (None for missing), rows in any order."""
    rows = frame.astype(object).where(frame.notna(), None).sample(frac=1.0, random_state=seed)
    return pd.DataFrame(rows.to_numpy().tolist(), columns=list(frame.columns))


def test_typed_rows_are_the_canonical_frames(small_snapshot: Path) -> None:
    """Rows as the driver returns them (None for missing) and as a frame with inferred dtypes holds them (NaN for
    a missing number, floats in an integer column) both give the export's canonical frame."""
    tables, _, _ = read_snapshot_tables(small_snapshot)
    specs: list[tuple[pd.DataFrame, tuple[ExportColumn, ...], tuple[str, ...]]]
    specs = [(tables.nodes[e.node.label], e.columns, (e.node.key,)) for e in NODE_EXPORTS]
    specs += [(tables.rels[e.rel.type], e.columns, e.keys) for e in REL_EXPORTS]
    for i, (frame, columns, keys) in enumerate(specs):
        read = _as_read(frame, i)[[c.name for c in columns]]
        for part in (read, read.head(7), read.head(0)):
            expected = canonical_frame(part, columns, keys)
            for rows in (part.astype(object).where(part.notna(), None).to_numpy().tolist(), part.to_numpy().tolist()):
                pd.testing.assert_frame_equal(typed_rows(rows, columns, keys), expected)
    columns = REL_EXPORTS[0].columns
    with pytest.raises(ValueError, match="null in key"):
        typed_rows([[None, "x", *([None] * (len(columns) - 2))]], columns, REL_EXPORTS[0].keys)


def _rows(frame: pd.DataFrame, seed: int) -> list[list[object]]:
    """The frame's rows as the receptive-field reader returns them: lists, None for missing, any order."""
    return _as_read(frame, seed).astype(object).where(lambda f: f.notna(), None).to_numpy().tolist()


def test_indexed_small_graphs_are_the_batch_index(small_snapshot: Path) -> None:
    """Rows as read → typed_rows → index_typed gives index_graph's nodes, edge order, positions and frames."""
    tables, _, _ = read_snapshot_tables(small_snapshot)
    nodes = {
        e.node.label: typed_rows(_rows(tables.nodes[e.node.label], 1), e.columns, (e.node.key,)) for e in NODE_EXPORTS
    }
    rels = {e.rel.type: typed_rows(_rows(tables.rels[e.rel.type], 2), e.columns, e.keys) for e in REL_EXPORTS}
    for e in REL_EXPORTS:  # typed_rows of rows as read is canonical_frame of the table
        pd.testing.assert_frame_equal(rels[e.rel.type], canonical_frame(tables.rels[e.rel.type], e.columns, e.keys))
    expected = index_graph(tables.nodes, tables.rels)
    got = index_typed(nodes, rels)
    assert sum(len(r.src) for r in got.rels.values()) > 1000
    for label, frame in expected.nodes.items():
        pd.testing.assert_frame_equal(got.nodes[label], frame)
    for rel_type, edges in expected.rels.items():
        np.testing.assert_array_equal(got.rels[rel_type].src, edges.src)
        np.testing.assert_array_equal(got.rels[rel_type].dst, edges.dst)
        pd.testing.assert_frame_equal(got.rels[rel_type].props, edges.props)
    some = next(e for e in REL_EXPORTS if len(rels[e.rel.type]) > 1)
    twice = {**rels, some.rel.type: pd.concat([rels[some.rel.type]] * 2, ignore_index=True)}
    with pytest.raises(ValueError, match="twice"):
        index_typed(nodes, twice)
    strangers = {**nodes, some.rel.source.label: nodes[some.rel.source.label].iloc[:0]}
    with pytest.raises(ValueError, match="not in the graph"):
        index_typed(strangers, rels)


@pytest.mark.parametrize("cap", [500, 2, None])
def test_baseline_rows_are_the_batch_baselines_rows(small_snapshot: Path, cap: int | None) -> None:
    tables, _, _ = read_snapshot_tables(small_snapshot)
    graph = build_risk_graph(tables.nodes, tables.rels)
    batch, _ = neighbourhood_features(graph, cap)
    rows = np.stack([baseline_row(graph, p, cap) for p in range(graph.num_accounts)])
    assert rows.shape == batch.shape
    np.testing.assert_allclose(rows, batch, rtol=1e-5, atol=1e-5)  # float32 means, summed in another order
