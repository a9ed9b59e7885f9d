"""Exported graph tables → :class:`~gnn.graph_data.RiskGraph`: id maps, edge indices, features, labels, hash.

Node positions follow the sorted business keys (``ids[label][i]`` is node i's key); edges follow the
sorted ``(src, dst, asset)`` keys. Each relationship type gives two PyG edge types: ``(src_label, TYPE,
dst_label)`` and ``(dst_label, "rev_" + TYPE, src_label)``. The content hash is a SHA-256 over every
column of every table in that canonical order (values, not dtypes), so the same graph hashes the same
whether it came from Neo4j, from :func:`tables_from_graph_rows` or from a snapshot.

:func:`tables_from_graph_rows` turns :func:`ingest.load.prepare`'s rows into the frames an export of the
same data returns, so the model side can build graphs without Neo4j.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import neo4j
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch_geometric.data import HeteroData

from gnn.export import DEFAULT_PAGE_SIZE, GraphTables, Progress, canonical_frame, export_graph
from gnn.feature_defs import IndexedRel
from gnn.features import FEATURE_VERSION, NodeFeatures, compute_features, default_reference_time
from gnn.graph_data import GROUP_ATTRIBUTES, LABEL_CODES, UNLABELLED, RiskGraph
from graph import schema as s
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS
from graph.supernodes import FEATURE_SHARED_CAP

REVERSE_PREFIX = "rev_"


@dataclass(frozen=True)
class IndexedGraph:
    """Tables in canonical order with every relationship's endpoints as node positions."""

    nodes: dict[str, pd.DataFrame]
    rels: dict[str, IndexedRel]


def tables_from_graph_rows(graph_rows: Mapping[str, pd.DataFrame]) -> GraphTables:
    """The frames an export would return after ``graph_rows`` were written to an empty graph.

    ``Account`` merges the three account writes: full rows, stubs (accounts only referenced by events;
    a full row wins) and known labels.
    """
    accounts = graph_rows.get("Account", pd.DataFrame({s.ACCOUNT.key: pd.Series(dtype="string")}))
    stubs = graph_rows.get("Account.stub")
    if stubs is not None and len(stubs):
        accounts = pd.concat([accounts, stubs[~stubs[s.ACCOUNT.key].isin(accounts[s.ACCOUNT.key])]], ignore_index=True)
    labels = graph_rows.get("Account.label")
    if labels is not None and len(labels):
        accounts = accounts.merge(labels, on=s.ACCOUNT.key, how="left", validate="one_to_one")
    nodes, rels = {}, {}
    for node_export in NODE_EXPORTS:
        label, names = node_export.node.label, [c.name for c in node_export.columns]
        frame = accounts if label == s.ACCOUNT.label else graph_rows.get(label, pd.DataFrame(columns=names))
        nodes[label] = canonical_frame(frame, node_export.columns, (node_export.node.key,))
    for rel_export in REL_EXPORTS:
        names = [c.name for c in rel_export.columns]
        frame = graph_rows.get(rel_export.rel.type, pd.DataFrame(columns=names))
        rels[rel_export.rel.type] = canonical_frame(frame, rel_export.columns, rel_export.keys)
    return GraphTables(nodes, rels)


def index_graph(nodes: Mapping[str, pd.DataFrame], rels: Mapping[str, pd.DataFrame]) -> IndexedGraph:
    """Sort nodes by key, map relationship endpoints to node positions, put edges in canonical order.

    Args:
        nodes: label → frame with the export's columns (a missing label counts as no nodes).
        rels: type → frame with the export's columns (a missing type counts as no relationships).

    Raises:
        ValueError: a column is missing, a key repeats, or a relationship names a node that is not there.
    """
    sorted_nodes: dict[str, pd.DataFrame] = {}
    for node_export in NODE_EXPORTS:
        label, key = node_export.node.label, node_export.node.key
        frame = nodes.get(label)
        if frame is None:
            frame = canonical_frame(pd.DataFrame(columns=[key]), node_export.columns, (key,))
        _require_columns(label, frame, [c.name for c in node_export.columns])
        if not frame[key].is_monotonic_increasing:
            frame = frame.sort_values(key, kind="stable", ignore_index=True)
        if not frame[key].is_unique:
            raise ValueError(f"{label}.{key} repeats {frame[key][frame[key].duplicated()].iloc[0]!r}")
        sorted_nodes[label] = frame
    indexed: dict[str, IndexedRel] = {}
    for rel_export in REL_EXPORTS:
        rel = rel_export.rel
        frame = rels.get(rel.type)
        if frame is None:
            frame = canonical_frame(pd.DataFrame(columns=list(rel_export.keys)), rel_export.columns, rel_export.keys)
        _require_columns(rel.type, frame, [c.name for c in rel_export.columns])
        src = _positions(rel.type, "src", frame["src"], sorted_nodes[rel.source.label][rel.source.key])
        dst = _positions(rel.type, "dst", frame["dst"], sorted_nodes[rel.target.label][rel.target.key])
        keys = [dst, src]
        if rel.discriminator:
            keys.insert(0, pd.factorize(frame[rel.discriminator], sort=True)[0])
        order = np.lexsort(keys)
        if not np.array_equal(order, np.arange(len(order))):
            frame, src, dst = frame.take(order).reset_index(drop=True), src[order], dst[order]
            keys = [k[order] for k in keys]
        same = np.ones(max(len(src) - 1, 0), dtype=bool)
        for k in keys:
            same &= k[1:] == k[:-1]
        if same.any():
            i = int(np.flatnonzero(same)[0])
            raise ValueError(f"{rel.type} holds {[frame[k].iloc[i] for k in rel_export.keys]} twice")
        indexed[rel.type] = IndexedRel(src, dst, frame)
    return IndexedGraph(sorted_nodes, indexed)


def content_hash(graph: IndexedGraph) -> str:
    """SHA-256 (hex) of every table's columns in canonical order; values count, dtypes do not."""
    digest = hashlib.sha256(f"ringwatch-graph\x1fschema={s.SCHEMA_VERSION}".encode())
    tables = [(e.node.label, e.columns, graph.nodes[e.node.label]) for e in NODE_EXPORTS]
    tables += [(e.rel.type, e.columns, graph.rels[e.rel.type].props) for e in REL_EXPORTS]
    for name, columns, frame in tables:
        digest.update(f"\x1e{name}\x1f{len(frame)}".encode())
        for column in columns:
            values = frame[column.name]
            missing = values.isna().to_numpy(dtype=bool)
            digest.update(f"\x1f{column.name}".encode())
            digest.update(np.packbits(missing).tobytes())
            if column.kind == "string":
                digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
            else:
                dtype = np.float64 if column.kind == "double" else np.int64
                digest.update(values.to_numpy(dtype=dtype, na_value=0).tobytes())
    return digest.hexdigest()


def build_risk_graph(
    nodes: Mapping[str, pd.DataFrame],
    rels: Mapping[str, pd.DataFrame],
    reference_time: int | None = None,
    shared_cap: int = FEATURE_SHARED_CAP,
) -> RiskGraph:
    """Build the model side's graph from exported tables (or :func:`tables_from_graph_rows`).

    Args:
        nodes: label → node frame (the export's columns).
        rels: type → relationship frame (the export's columns).
        reference_time: when features are computed, seconds since the epoch; default: the latest time in
            the data (label times excluded), so the same data always gives the same graph.
        shared_cap: super-node cap of the sharing features.

    Returns:
        The graph, every schema node and edge type present (empty where the data has none).

    Raises:
        ValueError: inconsistent tables (see :func:`index_graph`) or an unknown label value.
    """
    indexed = index_graph(nodes, rels)
    if reference_time is None:
        reference_time = default_reference_time(indexed.nodes, {t: r.props for t, r in indexed.rels.items()})
    features = compute_features(indexed.nodes, indexed.rels, reference_time, shared_cap)
    return assemble_risk_graph(indexed, features, reference_time, content_hash(indexed), shared_cap)


def risk_graph_from_neo4j(
    driver: neo4j.Driver,
    database: str,
    *,
    reference_time: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress | None = None,
) -> RiskGraph:
    """Export the graph from Neo4j and build it (training straight from the database, no snapshot).

    Raises:
        gnn.export.GraphExportError: the graph could not be read.
        ValueError: the exported tables are inconsistent (the graph was written to during the export).
    """
    tables = export_graph(driver, database, page_size=page_size, progress=progress)
    return build_risk_graph(tables.nodes, tables.rels, reference_time)


def assemble_risk_graph(
    indexed: IndexedGraph, features: Mapping[str, NodeFeatures], reference_time: int, digest: str, shared_cap: int
) -> RiskGraph:
    """A :class:`RiskGraph` from indexed tables and already computed features (snapshots reuse this)."""
    data = HeteroData()
    for spec in s.DOMAIN_NODES:  # schema order, whatever order the features came in
        data[spec.label].x = torch.from_numpy(np.ascontiguousarray(features[spec.label].values, dtype=np.float32))
        data[spec.label].num_nodes = len(indexed.nodes[spec.label])
    for rel in s.DOMAIN_RELS:
        edges = indexed.rels[rel.type]
        edge_index = torch.from_numpy(np.stack([edges.src, edges.dst]).astype(np.int64))
        data[rel.edge_type].edge_index = edge_index
        data[rel.target.label, REVERSE_PREFIX + rel.type, rel.source.label].edge_index = edge_index.flip(0)
    accounts = indexed.nodes[s.ACCOUNT.label]
    counts = {label: len(frame) for label, frame in indexed.nodes.items()}
    counts.update({t: len(r.props) for t, r in indexed.rels.items()})
    return RiskGraph(
        data=data,
        ids={spec.label: indexed.nodes[spec.label][spec.key].to_numpy(dtype=object) for spec in s.DOMAIN_NODES},
        feature_names={spec.label: list(features[spec.label].names) for spec in s.DOMAIN_NODES},
        labels=label_codes(training_labels(accounts)),
        created_at=accounts["created_at"].to_numpy(dtype=np.int64, na_value=0) // 1000,
        reference_time=int(reference_time),
        content_hash=digest,
        meta={
            "schema_version": s.SCHEMA_VERSION,
            "feature_version": FEATURE_VERSION,
            "shared_cap": shared_cap,
            "counts": counts,
        },
        attributes=accounts.reindex(columns=list(GROUP_ATTRIBUTES)).reset_index(drop=True),
    )


def training_labels(accounts: pd.DataFrame) -> pd.Series:
    """Each account's label for training: an investigator's verdict where there is one, else the known label.

    ``confirmed`` makes the account a positive of ``verdict_threat``; ``false_positive`` makes it ``benign``
    (the verdict is newer than the review team's label, and made by someone who looked at the graph).
    """
    labels = accounts["known_label"].astype(object)
    if "verdict" not in accounts.columns:
        return labels
    verdict = accounts["verdict"].astype(object)
    confirmed = (verdict == s.CONFIRMED).fillna(False).to_numpy(dtype=bool)
    cleared = (verdict == s.FALSE_POSITIVE).fillna(False).to_numpy(dtype=bool)
    labels = labels.where(~confirmed, accounts["verdict_threat"].astype(object))
    return labels.where(~cleared, s.BENIGN)


def label_codes(known_label: pd.Series) -> np.ndarray:
    """int8 label codes (:data:`~gnn.graph_data.LABEL_CODES`; :data:`UNLABELLED` where none).

    Raises:
        ValueError: a label the schema does not know.
    """
    unknown = sorted(set(known_label.dropna().unique()) - set(LABEL_CODES))
    if unknown:
        raise ValueError(f"Account.known_label holds labels the schema does not know: {unknown[:5]}")
    codes = known_label.map(LABEL_CODES).to_numpy(dtype=np.float64, na_value=UNLABELLED)
    return codes.astype(np.int8)


def _require_columns(name: str, frame: pd.DataFrame, columns: list[str]) -> None:
    present = set(frame.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{name} frame lacks columns {missing}")


def _positions(rel_type: str, end: str, keys: pd.Series, node_keys: pd.Series) -> np.ndarray:
    found = pc.index_in(pa.array(keys, type=pa.large_string()), value_set=pa.array(node_keys, type=pa.large_string()))
    if found.null_count:
        missing = keys[found.is_null().to_numpy(zero_copy_only=False)]
        raise ValueError(
            f"{rel_type}.{end} names {found.null_count} nodes that are not in the graph, e.g. {missing.iloc[0]!r}"
        )
    return found.to_numpy(zero_copy_only=False).astype(np.int64)
