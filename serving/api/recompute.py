"""Pieces of an account's recompute (:mod:`serving.api.scorer`) sized for the few rows a request reads.

The batch job's functions are built for whole graphs: :func:`gnn.export.canonical_frame` converts and sorts
a column at a time (~4 ms a frame whatever its size, seventeen frames a recompute), and
:func:`gnn.baseline.neighbourhood_features` builds sparse matrices over every account of the graph it gets
when a recompute needs one row of it. The functions here give the same results for that case: the same frames,
the same row (tested against the batch functions, ``tests/unit/test_api_recompute.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gnn.export import COLUMN_DTYPES
from gnn.graph_data import RiskGraph
from graph.queries.export import ExportColumn


def typed_frame(frame: pd.DataFrame, columns: tuple[ExportColumn, ...], keys: tuple[str, ...]) -> pd.DataFrame:
    """:func:`gnn.export.canonical_frame` of a small frame: the same columns, dtypes and row order, built row-wise
    (Python's sort of the key tuples is pandas' stable sort of the key columns: both order strings by code point).

    Raises:
        ValueError: a key column is missing or null.
    """
    n = len(frame)
    for name in keys:
        if name not in frame.columns:
            raise ValueError(f"frame lacks key column {name!r}; has {list(frame.columns)}")
    key_values = [frame[k].tolist() for k in keys]
    if any(_missing(v) for vs in key_values for v in vs):
        raise ValueError(f"null in key columns {list(keys)}")
    order = np.array(sorted(range(n), key=lambda i: tuple(str(vs[i]) for vs in key_values)), dtype=np.int64)
    data = {}
    for c in columns:
        dtype = COLUMN_DTYPES[c.kind]
        if c.name in frame.columns:
            data[c.name] = pd.array(frame[c.name].to_numpy()[order], dtype=dtype)
        else:
            data[c.name] = pd.array([None] * n, dtype=dtype)
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


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
