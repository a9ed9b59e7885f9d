"""Pieces of an account's recompute (:mod:`serving.api.scorer`) sized for the few rows a request reads.

The batch job's functions are built for whole graphs: :func:`gnn.export.canonical_frame` converts and sorts
a column at a time (~4 ms a frame whatever its size, seventeen frames a recompute), :func:`gnn.build.index_graph`
checks, sorts and looks up every table again with pandas and Arrow, and :func:`gnn.baseline.neighbourhood_features`
builds sparse matrices over every account of the graph it gets when a recompute needs one row of it. The
functions here give the same results for that case: the same frames, the same indexed graph, the same row
(tested against the batch functions, ``tests/unit/test_api_recompute.py``). The features themselves are the batch
job's own (:func:`gnn.features.compute_features`), never a second version.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gnn.build import IndexedGraph
from gnn.export import COLUMN_DTYPES
from gnn.feature_defs import IndexedRel
from gnn.graph_data import RiskGraph
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS, ExportColumn


def typed_rows(rows: list[list[Any]], columns: tuple[ExportColumn, ...], keys: tuple[str, ...]) -> pd.DataFrame:
    """:func:`gnn.export.canonical_frame` of a few rows as read (lists in the order of ``columns``): the same
    columns, dtypes and row order, built row-wise (Python's sort of the key tuples is pandas' stable sort of the
    key columns: both order strings by code point), each column straight from its values and null mask
    (``pd.array`` infers what it is given: 5-10 times slower).

    Raises:
        ValueError: a key is null.
    """
    n = len(rows)
    if not n:
        return _empty_frame(columns).copy(deep=False)
    at = [next(j for j, c in enumerate(columns) if c.name == k) for k in keys]
    if any(_missing(row[j]) for row in rows for j in at):
        raise ValueError(f"null in key columns {list(keys)}")
    ordered = sorted(rows, key=lambda row: tuple(str(row[j]) for j in at))
    data = {c.name: _typed([row[j] for row in ordered], c.kind) for j, c in enumerate(columns)}
    return pd.DataFrame(data, index=pd.RangeIndex(n), copy=False)


def index_typed(nodes: dict[str, pd.DataFrame], rels: dict[str, pd.DataFrame]) -> IndexedGraph:
    """:func:`gnn.build.index_graph` of frames already in canonical order (:func:`typed_rows`' — nodes by key,
    relationships by ``(src, dst[, discriminator])``, the order ``index_graph`` sorts edges into): the endpoints'
    positions looked up in a dict, nothing re-sorted.

    Raises:
        ValueError: a key repeats, or a relationship names a node that is not there.
    """
    positions: dict[str, dict[str, int]] = {}
    for node_export in NODE_EXPORTS:
        keys = nodes[node_export.node.label][node_export.node.key].tolist()
        positions[node_export.node.label] = {k: i for i, k in enumerate(keys)}
        if len(positions[node_export.node.label]) != len(keys):
            raise ValueError(f"{node_export.node.label}.{node_export.node.key} repeats a key")
    indexed: dict[str, IndexedRel] = {}
    for rel_export in REL_EXPORTS:
        rel, frame = rel_export.rel, rels[rel_export.rel.type]
        ends = []
        for end, label in (("src", rel.source.label), ("dst", rel.target.label)):
            where = positions[label]
            found = [where.get(k, -1) for k in frame[end].tolist()]
            if -1 in found:
                raise ValueError(f"{rel.type}.{end} names a node that is not in the graph")
            ends.append(np.array(found, dtype=np.int64))
        keys = list(zip(*(frame[k].tolist() for k in rel_export.keys)))
        if len(set(keys)) != len(keys):
            raise ValueError(f"{rel.type} holds an edge twice")
        indexed[rel.type] = IndexedRel(ends[0], ends[1], frame)
    return IndexedGraph(nodes, indexed)


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _typed(values: list[Any], kind: str) -> Any:
    """``pd.array(values, dtype=COLUMN_DTYPES[kind])`` for plain Python values (None, NA or NaN for missing).

    Values as the driver returns them (None for missing, the kind's own Python type) go through Arrow in one call
    and into the pandas array by their values and null mask; anything else (a float in a long column, NaN from a
    frame) is converted value by value."""
    arrow_type, array_type = _ARROW_OF[kind]
    try:
        arr = pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = None
    if arr is None or (kind == "double" and pc.any(pc.is_nan(arr)).as_py()):
        missing = [_missing(v) for v in values]
        plain = [None if m else (str(v) if kind == "string" else v) for v, m in zip(values, missing)]
        arr = pa.array(plain, type=arrow_type)
    if kind == "string":
        return pd.arrays.ArrowStringArray(arr)
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    return array_type(arr.fill_null(_FILL[kind]).to_numpy(zero_copy_only=False), mask)


_ARROW_OF: dict[str, tuple[pa.DataType, Any]] = {
    "string": (pa.large_string(), pd.arrays.ArrowStringArray),
    "long": (pa.int64(), pd.arrays.IntegerArray),
    "datetime": (pa.int64(), pd.arrays.IntegerArray),
    "double": (pa.float64(), pd.arrays.FloatingArray),
    "boolean": (pa.bool_(), pd.arrays.BooleanArray),
}
_FILL: dict[str, Any] = {"long": 0, "datetime": 0, "double": 0.0, "boolean": False}


@functools.cache
def _empty_frame(columns: tuple[ExportColumn, ...]) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.array([], dtype=COLUMN_DTYPES[c.kind]) for c in columns}, index=pd.RangeIndex(0))


def baseline_row(graph: RiskGraph, account: int, supernode_cap: int | None) -> np.ndarray:
    """Row ``account`` of :func:`gnn.baseline.neighbourhood_features` of ``graph``: the account's own features,
    the mean over its distinct neighbours of each edge type leaving accounts (``rev_*`` skipped), and the mean
    and number of the distinct other accounts it reaches in two hops through an identifier used by at most
    ``supernode_cap`` accounts of ``graph``, or in one hop along an account→account edge either way.

    Shapes:
        - **output:** ``[F]`` float32.
    """
    data = graph.data
    target = "Account"
    x_target = data[target].x.numpy()
    blocks: list[np.ndarray] = [x_target[account].astype(np.float64)]
    reached: set[int] = set()
    for src, rel, dst in data.edge_types:
        if src != target or rel.startswith("rev_"):
            continue
        ei = data[(src, rel, dst)].edge_index.numpy()
        n_dst = data[dst].num_nodes
        x_dst = data[dst].x.numpy()
        mine = np.unique(ei[1][ei[0] == account])
        if len(mine):
            blocks.append((x_dst[mine].astype(np.float64) * (1.0 / len(mine))).sum(axis=0))
        else:
            blocks.append(np.zeros(x_dst.shape[1]))
        if dst != target:
            if not len(mine):
                continue
            pairs = np.unique(ei[0].astype(np.int64) * max(n_dst, 1) + ei[1])
            users_of, ident = pairs // max(n_dst, 1), pairs % max(n_dst, 1)
            users = np.bincount(ident, minlength=n_dst)
            kept = mine[users[mine] <= supernode_cap] if supernode_cap else mine
            reached.update(users_of[np.isin(ident, kept)].tolist())
        else:
            reached.update(ei[1][ei[0] == account].tolist())
            reached.update(ei[0][ei[1] == account].tolist())
    reached.discard(account)
    others = np.fromiter(sorted(reached), dtype=np.int64, count=len(reached))
    if len(others):
        blocks.append((x_target[others].astype(np.float64) * (1.0 / len(others))).sum(axis=0))
    else:
        blocks.append(np.zeros(x_target.shape[1]))
    blocks.append(np.array([float(len(others))]))
    return np.concatenate(blocks).astype(np.float32)
