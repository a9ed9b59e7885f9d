"""The snapshot job (``ringwatch snapshot``): export the graph, build its features, write a snapshot folder.

:func:`take_snapshot` reads the graph back from Neo4j; :func:`snapshot_from_rows` writes the same snapshot from
the rows a first (bulk) load of an empty graph already holds in memory (:attr:`ingest.load.PreparedRun.graph_rows`:
what an export of that graph returns, :func:`gnn.build.tables_from_graph_rows`), so a first run need not read
the graph back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import neo4j
import pandas as pd

from gnn.build import build_risk_graph, tables_from_graph_rows
from gnn.export import DEFAULT_PAGE_SIZE, GraphTables, export_graph, export_neighbourhood, graph_fingerprint
from gnn.snapshot import read_manifest, redact_uri, write_snapshot
from graph.logs import logger
from graph.runs import Progress
from graph.settings import Settings

log = logger(__name__)


@dataclass
class SnapshotSummary:
    """What a snapshot holds: folder, source, content hash, reference time, counts, seconds per step."""

    snapshot: str
    source: str
    content_hash: str
    reference_time: int
    nodes: dict[str, int]
    edges: dict[str, int]
    features: dict[str, int]
    labelled_accounts: int
    seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)


def graph_source(settings: Settings) -> str:
    """The configured graph as ``<uri>/<database>``, without credentials."""
    uri = settings.neo4j_uri if settings.uses_external_server and settings.neo4j_uri else settings.local_uri
    return f"{redact_uri(uri).rstrip('/')}/{settings.neo4j_database}"


def take_snapshot(
    driver: neo4j.Driver,
    database: str,
    out: Path,
    *,
    source: str,
    overwrite: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    reference_time: int | None = None,
    progress: Progress | None = None,
    accounts: list[str] | None = None,
    hops: int = 2,
) -> SnapshotSummary:
    """Export the graph into a snapshot folder.

    Args:
        driver: an open driver (the caller owns it).
        database: the database to read.
        out: the snapshot folder to create.
        source: where the graph is (recorded in the manifest, credentials removed), e.g. :func:`graph_source`.
        overwrite: replace an existing snapshot at ``out``.
        page_size: accounts (or nodes) per read page.
        reference_time: the features' reference time (seconds); default: the latest time in the data.
        progress: called as ``progress(stage, done, total)`` while exporting.
        accounts: export only these accounts' neighbourhood within ``hops`` hops
            (:func:`gnn.export.export_neighbourhood`); None: the whole graph.
        hops: the neighbourhood's radius (with ``accounts``).

    Raises:
        gnn.snapshot.SnapshotError: ``out`` exists (without ``overwrite``) or cannot be written.
        gnn.export.GraphExportError: the graph could not be read.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    fingerprint = None
    if accounts is None:
        # Counted before the export: a write during it makes the snapshot look older, never newer, than it is.
        fingerprint = graph_fingerprint(driver, database) if reference_time is None else None
        tables = export_graph(driver, database, page_size=page_size, progress=progress)
    else:
        tables = export_neighbourhood(driver, database, accounts, hops)
        source = f"{source} (neighbourhood of {len(set(accounts))} accounts, {hops} hops)"
    timings["export"] = time.perf_counter() - started
    return _write(tables, out, source, overwrite, reference_time, timings, fingerprint)


def snapshot_from_rows(
    graph_rows: Mapping[str, pd.DataFrame],
    out: Path,
    *,
    source: str,
    overwrite: bool = False,
    reference_time: int | None = None,
    fingerprint: Mapping[str, int] | None = None,
) -> SnapshotSummary:
    """Write the snapshot of the graph that ``graph_rows`` build when written to an *empty* graph, without
    reading it back (a first bulk load's rows: :attr:`ingest.load.PreparedRun.graph_rows`).

    Its content hash equals :func:`take_snapshot`'s of the loaded graph (tested); for a graph that held anything
    before, take the snapshot from the graph instead.

    Args:
        graph_rows: the prepared rows, by write name.
        out: the snapshot folder to create.
        source: where the graph is (recorded in the manifest), e.g. :func:`graph_source`.
        overwrite: replace an existing snapshot at ``out``.
        reference_time: the features' reference time (seconds); default: the latest time in the data.
        fingerprint: :func:`gnn.export.graph_fingerprint` of the graph once the rows are loaded (then a job can
            tell whether the graph is still the one the snapshot holds, :func:`current_snapshot`).

    Raises:
        gnn.snapshot.SnapshotError: ``out`` exists (without ``overwrite``) or cannot be written.
    """
    started = time.perf_counter()
    tables = tables_from_graph_rows(graph_rows)
    timings = {"rows": time.perf_counter() - started}
    return _write(tables, out, source, overwrite, reference_time, timings, fingerprint)


def current_snapshot(driver: neo4j.Driver, database: str, folder: Path) -> str | None:
    """Why the snapshot at ``folder`` does not hold the graph as it is now, or None when it does: its recorded
    :func:`gnn.export.graph_fingerprint` equals the graph's (no ringwatch write since), so a job can read the
    snapshot instead of exporting the graph again.

    Raises:
        gnn.snapshot.SnapshotError: ``folder`` is not a readable snapshot.
        gnn.export.GraphExportError: the graph could not be counted.
    """
    recorded = read_manifest(folder).get("graph_fingerprint")
    if not isinstance(recorded, dict):
        return "the snapshot records no fingerprint of the graph (a partial snapshot, or a given reference time)"
    now = graph_fingerprint(driver, database)
    changed = sorted(k for k in set(now) | set(recorded) if now.get(k) != recorded.get(k))
    if changed:
        return (
            "the graph changed since the snapshot ("
            + ", ".join(f"{k} {recorded.get(k, 0):,} → {now.get(k, 0):,}" for k in changed[:4])
            + (", …)" if len(changed) > 4 else ")")
        )
    return None


def _write(
    tables: GraphTables,
    out: Path,
    source: str,
    overwrite: bool,
    reference_time: int | None,
    timings: dict[str, float],
    fingerprint: Mapping[str, int] | None = None,
) -> SnapshotSummary:
    """Features of ``tables``, then the snapshot folder; ``timings`` gains ``features`` and ``write``."""
    step = time.perf_counter()
    graph = build_risk_graph(tables.nodes, tables.rels, reference_time)
    timings["features"] = time.perf_counter() - step
    step = time.perf_counter()
    manifest = write_snapshot(tables, out, graph=graph, source=source, overwrite=overwrite, fingerprint=fingerprint)
    timings["write"] = time.perf_counter() - step
    log.info("snapshot %s written (%s)", out, manifest["content_hash"][:16])
    return SnapshotSummary(
        snapshot=str(out),
        source=manifest["source"],
        content_hash=manifest["content_hash"],
        reference_time=manifest["reference_time"],
        nodes=manifest["counts"]["nodes"],
        edges=manifest["counts"]["edges"],
        features={label: len(names) for label, names in manifest["feature_names"].items()},
        labelled_accounts=int((graph.labels >= 0).sum()),
        seconds={k: round(v, 2) for k, v in timings.items()},
    )
