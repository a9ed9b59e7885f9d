"""Graph snapshots on disk: Parquet tables plus a verified ``manifest.json``, so training can run without Neo4j.

Layout of a snapshot folder::

    manifest.json           what is inside (see below); written last
    nodes/<Label>.parquet   key, raw properties, ``label`` (Account: label code), ``x__<feature>`` columns
    edges/<TYPE>.parquet    src, dst (, asset), raw properties, ``src_index``, ``dst_index`` (node positions)

The manifest records the format and schema versions, node and edge counts per type, the content hash
(:func:`gnn.build.content_hash`), the reference time, when it was written, the source (a URI without
credentials), the feature names, and each file's row count and SHA-256. :func:`read_snapshot` checks all
of it — file hashes, counts, the content hash recomputed from the tables, feature names — and raises
:class:`SnapshotError` naming what does not match. The folder is written beside its destination and
renamed into place, so a crash never leaves a half-written snapshot under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gnn.build import IndexedGraph, assemble_risk_graph, build_risk_graph, content_hash, index_graph
from gnn.export import GraphTables, arrow_to_frame
from gnn.features import NodeFeatures
from gnn.graph_data import RiskGraph
from graph import schema as s
from graph.errors import RingwatchError
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS
from graph.supernodes import FEATURE_SHARED_CAP

FORMAT = "ringwatch-graph-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FEATURE_PREFIX = "x__"


class SnapshotError(RingwatchError):
    """A snapshot could not be written, or what is on disk does not match its manifest."""


def redact_uri(uri: str) -> str:
    """``uri`` without user, password, query or fragment (safe to record and print)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def write_snapshot(
    tables: GraphTables,
    out_dir: Path,
    *,
    graph: RiskGraph | None = None,
    reference_time: int | None = None,
    source: str = "",
    overwrite: bool = False,
    shared_cap: int = FEATURE_SHARED_CAP,
    fingerprint: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Write ``tables`` and their features as a snapshot folder.

    Args:
        tables: the exported graph (raw properties are kept, so features can be recomputed later).
        out_dir: the snapshot folder to create.
        graph: the graph already built from ``tables`` (its features are stored); built here when None.
        reference_time: when ``graph`` is None, the features' reference time (default: from the data).
        source: where the tables came from; credentials in a URI are removed.
        overwrite: replace an existing snapshot at ``out_dir``.
        shared_cap: super-node cap of the sharing features when ``graph`` is None.
        fingerprint: the graph's :func:`gnn.export.graph_fingerprint` when ``tables`` were read (recorded).

    Returns:
        The manifest written.

    Raises:
        SnapshotError: ``out_dir`` exists (and not ``overwrite``), ``graph`` was not built from ``tables``,
            or a file could not be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SnapshotError(f"{out_dir} is a file, not a snapshot folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise SnapshotError(f"{out_dir} already exists and is not empty; choose another folder or overwrite")
    indexed = index_graph(tables.nodes, tables.rels)
    if graph is None:
        graph = build_risk_graph(
            indexed.nodes, {t: r.props for t, r in indexed.rels.items()}, reference_time, shared_cap
        )
    elif graph.content_hash != content_hash(indexed):
        raise SnapshotError("graph was not built from these tables (content hashes differ)")
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        files = _write_tables(indexed, graph, staging)
        manifest = _manifest(graph, files, redact_uri(source) if "://" in source else source, fingerprint)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except OSError as e:
        raise SnapshotError(f"could not write the snapshot to {out_dir}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _write_tables(indexed: IndexedGraph, graph: RiskGraph, folder: Path) -> dict[str, dict[str, Any]]:
    (folder / "nodes").mkdir(parents=True)
    (folder / "edges").mkdir()
    files: dict[str, dict[str, Any]] = {}
    for node_export in NODE_EXPORTS:
        label = node_export.node.label
        frame = indexed.nodes[label].copy()
        if label == s.ACCOUNT.label:
            frame["label"] = graph.labels
        x = graph.data[label].x.numpy()
        for j, name in enumerate(graph.feature_names[label]):
            frame[FEATURE_PREFIX + name] = x[:, j]
        files[f"nodes/{label}.parquet"] = _write_parquet(frame, folder / "nodes" / f"{label}.parquet")
    for rel_export in REL_EXPORTS:
        edges = indexed.rels[rel_export.rel.type]
        frame = edges.props.assign(src_index=edges.src, dst_index=edges.dst)
        name = f"edges/{rel_export.rel.type}.parquet"
        files[name] = _write_parquet(frame, folder / name)
    return files


def _write_parquet(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")
    return {"rows": len(frame), "sha256": _file_sha256(path)}


def _manifest(
    graph: RiskGraph, files: dict[str, dict[str, Any]], source: str, fingerprint: Mapping[str, int] | None
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": s.SCHEMA_VERSION,
        "feature_version": graph.meta.get("feature_version"),
        "shared_cap": graph.meta.get("shared_cap"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference_time": graph.reference_time,
        "content_hash": graph.content_hash,
        "source": source,
        "counts": {
            "nodes": {e.node.label: files[f"nodes/{e.node.label}.parquet"]["rows"] for e in NODE_EXPORTS},
            "edges": {e.rel.type: files[f"edges/{e.rel.type}.parquet"]["rows"] for e in REL_EXPORTS},
        },
        "feature_names": graph.feature_names,
        "files": files,
        "graph_fingerprint": dict(fingerprint) if fingerprint is not None else None,
    }


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a snapshot folder, checked for format and schema version.

    Raises:
        SnapshotError: missing or unreadable manifest, another format, or another schema version.
    """
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as e:
        raise SnapshotError(f"{folder} is not a snapshot: {MANIFEST} is missing") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SnapshotError(f"the manifest {path} cannot be read: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("schema_version") != s.SCHEMA_VERSION:
        raise SnapshotError(
            f"{path} has format {manifest.get('format_version')} / schema {manifest.get('schema_version')}; this "
            f"version reads format {FORMAT_VERSION} / schema {s.SCHEMA_VERSION}: export the graph again"
        )
    return manifest


def read_snapshot_tables(folder: Path) -> tuple[GraphTables, dict[str, pd.DataFrame], dict[str, Any]]:
    """A snapshot's raw tables, its node files whole (features included) and its manifest, all verified
    except the content hash (see :func:`read_snapshot`).

    Raises:
        SnapshotError: a file is missing, or its hash or row count differs from the manifest.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    expected = {f"nodes/{e.node.label}.parquet": ("nodes", e.node.label) for e in NODE_EXPORTS}
    expected.update({f"edges/{e.rel.type}.parquet": ("edges", e.rel.type) for e in REL_EXPORTS})
    frames: dict[str, dict[str, pd.DataFrame]] = {"nodes": {}, "edges": {}}
    for name, (kind, element) in expected.items():
        entry = _entry(manifest, name)
        count = _lookup(manifest, "counts", kind, element)
        if count != entry.get("rows"):
            raise SnapshotError(f"manifest counts {count} {element} but lists {entry.get('rows')} rows in {name}")
        path = folder / name
        if not path.is_file():
            raise SnapshotError(f"snapshot file {path} is missing")
        if _file_sha256(path) != entry.get("sha256"):
            raise SnapshotError(f"{path} is corrupted or was changed: its SHA-256 differs from the manifest")
        try:
            frame = arrow_to_frame(pq.read_table(path))
        except (OSError, pa.ArrowException) as e:
            raise SnapshotError(f"{path} cannot be read: {e}") from e
        if len(frame) != count:
            raise SnapshotError(f"{path} holds {len(frame)} rows; the manifest says {count}")
        frames[kind][element] = frame
    nodes = {e.node.label: frames["nodes"][e.node.label][[c.name for c in e.columns]] for e in NODE_EXPORTS}
    rels = {e.rel.type: frames["edges"][e.rel.type][[c.name for c in e.columns]] for e in REL_EXPORTS}
    return GraphTables(nodes, rels), frames["nodes"], manifest


def read_snapshot(folder: Path) -> RiskGraph:
    """Load a snapshot as a :class:`RiskGraph`, with the features stored in it.

    Raises:
        SnapshotError: anything on disk disagrees with the manifest (file hashes, counts, content hash,
            feature names, label codes), or the tables are inconsistent.
    """
    return load_snapshot(folder)[0]


def load_snapshot(folder: Path) -> tuple[RiskGraph, GraphTables]:
    """:func:`read_snapshot`, and the raw tables it was built from (what an export of that graph returns)."""
    tables, node_files, manifest = read_snapshot_tables(folder)
    try:
        indexed = index_graph(tables.nodes, tables.rels)
    except ValueError as e:
        raise SnapshotError(f"snapshot {folder} is inconsistent: {e}") from e
    if content_hash(indexed) != manifest.get("content_hash"):
        raise SnapshotError(f"snapshot {folder}: content hash differs from the manifest's; export it again")
    reference_time, shared_cap = manifest.get("reference_time"), manifest.get("shared_cap", FEATURE_SHARED_CAP)
    if not isinstance(reference_time, int) or not isinstance(shared_cap, int):
        raise SnapshotError(f"snapshot {folder}: the manifest's reference_time or shared_cap is not an integer")
    features = _stored_features(node_files, manifest.get("feature_names"), folder)
    graph = assemble_risk_graph(indexed, features, reference_time, manifest["content_hash"], shared_cap)
    stored_labels = node_files[s.ACCOUNT.label]["label"].to_numpy(dtype=np.int8)
    if not np.array_equal(stored_labels, graph.labels):
        raise SnapshotError(f"snapshot {folder}: stored label codes disagree with known_label/verdict")
    graph.meta.update(
        {
            "feature_version": manifest.get("feature_version"),
            "source": manifest.get("source"),
            "snapshot": str(folder),
            "snapshot_created_at": manifest.get("created_at"),
        }
    )
    return graph, tables


def _stored_features(node_files: Mapping[str, pd.DataFrame], names: Any, folder: Path) -> dict[str, NodeFeatures]:
    features: dict[str, NodeFeatures] = {}
    for label, frame in node_files.items():
        stored = [c[len(FEATURE_PREFIX) :] for c in frame.columns if c.startswith(FEATURE_PREFIX)]
        if not isinstance(names, dict) or names.get(label) != stored:
            raise SnapshotError(f"snapshot {folder}: {label} features differ from the manifest's feature names")
        values = frame[[FEATURE_PREFIX + n for n in stored]].to_numpy(dtype=np.float32)
        features[label] = NodeFeatures(stored, values.reshape(len(frame), len(stored)))
    return features


def _lookup(manifest: Mapping[str, Any], *path: str) -> Any:
    """``manifest[a][b]…``, or None where a level is missing or not an object (a damaged manifest)."""
    value: Any = manifest
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _entry(manifest: Mapping[str, Any], name: str) -> dict[str, Any]:
    entry = _lookup(manifest, "files", name)
    if not isinstance(entry, dict):
        raise SnapshotError(f"manifest lists no file {name}")
    return entry


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def erase_from_snapshot(folder: Path, account_id: str) -> bool:
    """Rewrite the snapshot at ``folder`` without ``account_id`` (an erased account, ``ringwatch erase``).

    Removed: the account's node, every relationship at either end of it, and the personal identifiers (devices,
    cards, IPs, emails, phones, wallets) only it used. Features are recomputed on what is left, with the same
    reference time; the manifest's content hash changes accordingly.

    Returns:
        True when the snapshot held the account (and was rewritten); False when it did not (left as it is).

    Raises:
        SnapshotError: the snapshot cannot be read or written.
    """
    tables, _, manifest = read_snapshot_tables(folder)
    accounts = tables.nodes[s.ACCOUNT.label]
    if not (accounts[s.ACCOUNT.key] == account_id).any():
        return False
    nodes = {label: frame.copy() for label, frame in tables.nodes.items()}
    rels: dict[str, pd.DataFrame] = {}
    personal = {spec.label: spec for spec in s.PERSONAL_IDENTIFIER_NODES}
    only_theirs: dict[str, set[Any]] = {}
    for rel_type, frame in tables.rels.items():
        rel = s.rel_by_type(rel_type)
        own = (frame["src"] == account_id).to_numpy()
        if rel.target == s.ACCOUNT:
            own |= (frame["dst"] == account_id).to_numpy()
        elif rel.target.label in personal:
            theirs = set(frame["dst"][own]) - set(frame["dst"][~own])
            only_theirs.setdefault(rel.target.label, set()).update(theirs)
        rels[rel_type] = frame[~own].reset_index(drop=True)
    for label, keys in only_theirs.items():
        # An identifier used by the account through one relationship type and by others through another stays.
        still_used = {
            k for rel_type, frame in rels.items() if s.rel_by_type(rel_type).target.label == label for k in frame["dst"]
        }
        spec = personal[label]
        nodes[label] = nodes[label][~nodes[label][spec.key].isin(list(keys - still_used))].reset_index(drop=True)
    nodes[s.ACCOUNT.label] = accounts[accounts[s.ACCOUNT.key] != account_id].reset_index(drop=True)
    write_snapshot(
        GraphTables(nodes, rels),
        folder,
        reference_time=manifest["reference_time"],
        source=manifest.get("source", ""),
        overwrite=True,
        shared_cap=manifest.get("shared_cap") or FEATURE_SHARED_CAP,
    )
    return True
