"""``ringwatch snapshot``: export the configured graph, build its features and write a snapshot folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from gnn.build import build_risk_graph
from gnn.export import DEFAULT_PAGE_SIZE, export_graph
from gnn.snapshot import redact_uri, write_snapshot
from graph.settings import Settings
from serving.cli_support import open_graph
from serving.console import console, progress_bar, safe


def graph_source(settings: Settings) -> str:
    """The configured graph as ``<uri>/<database>``, without credentials."""
    uri = settings.neo4j_uri if settings.uses_external_server and settings.neo4j_uri else settings.local_uri
    return f"{redact_uri(uri).rstrip('/')}/{settings.neo4j_database}"


def run_snapshot(
    settings: Settings, out: Path, *, overwrite: bool = False, page_size: int = DEFAULT_PAGE_SIZE,
    reference_time: int | None = None,
) -> dict[str, Any]:
    """Export the configured graph into a snapshot folder and print what was written.

    Args:
        settings: which graph to read.
        out: the snapshot folder to create.
        overwrite: replace an existing snapshot at ``out``.
        page_size: accounts (or nodes) per read page.
        reference_time: the features' reference time (seconds); default: the latest time in the data.

    Returns:
        A summary: folder, source, counts, content hash, reference time and seconds per step.

    Raises:
        gnn.snapshot.SnapshotError: ``out`` exists (without ``overwrite``) or cannot be written.
        gnn.export.GraphExportError: the graph could not be read.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with open_graph(settings) as driver, progress_bar("export") as progress:
        tables = export_graph(driver, settings.neo4j_database, page_size=page_size, progress=progress)
    timings["export"] = time.perf_counter() - started
    step = time.perf_counter()
    graph = build_risk_graph(tables.nodes, tables.rels, reference_time)
    timings["features"] = time.perf_counter() - step
    step = time.perf_counter()
    manifest = write_snapshot(tables, out, graph=graph, source=graph_source(settings), overwrite=overwrite)
    timings["write"] = time.perf_counter() - step
    summary = {
        "snapshot": str(out),
        "source": manifest["source"],
        "content_hash": manifest["content_hash"],
        "reference_time": manifest["reference_time"],
        "nodes": manifest["counts"]["nodes"],
        "edges": manifest["counts"]["edges"],
        "features": {label: len(names) for label, names in manifest["feature_names"].items()},
        "labelled_accounts": int((graph.labels >= 0).sum()),
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    _print_summary(summary)
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"snapshot {summary['snapshot']}")
    for column in ("type", "count", "features"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for label, n in summary["nodes"].items():
        table.add_row(label, str(n), str(summary["features"].get(label, "")))
    for rel_type, n in summary["edges"].items():
        table.add_row(rel_type, str(n), "")
    console.print(table)
    console.print(f"source {safe(summary['source'])}; content hash {summary['content_hash'][:16]}…; "
                  f"reference time {summary['reference_time']}; {summary['labelled_accounts']} labelled accounts")
