"""``ringwatch ingest``: resolve settings, run the ingestion, print the run summary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from graph.errors import ConfigurationError
from graph.local_server import LocalNeo4j
from graph.settings import Settings
from graph.writer import BatchWriter
from ingest.bulk import bulk_load
from ingest.load import CHUNK_ROWS, DEFAULT_BATCH_SIZE, PreparedRun, prepare, write_graph, write_rejects
from ingest.privacy import Hasher, load_or_create_demo_key
from serving.cli_support import open_graph
from serving.console import console, progress_bar, safe

DEMO_KEY_FILE = "demo_hash_key"


def hasher_from(settings: Settings, demo: bool = False) -> Hasher | None:
    """The hasher for personal data: RINGWATCH_HASH_KEY, or for the demo a key kept in the data folder."""
    if settings.hash_key is not None:
        return Hasher(settings.hash_key.get_secret_value())
    if demo:
        return Hasher(load_or_create_demo_key(settings.data_dir / DEMO_KEY_FILE))
    return None


def run_ingest(settings: Settings, folder: Path, rejects: Path | None, batch_size: int = DEFAULT_BATCH_SIZE,
               bulk: bool = False, demo: bool = False, out: Console | None = None) -> dict[str, Any]:
    """Ingest ``folder`` into the configured graph; returns the run report (also printed).

    Args:
        out: where progress and the summary go (default: standard output; ``--json`` sends them to standard
            error, so that standard output holds the JSON report only).
    """
    out = out or console
    started = datetime.now(UTC)
    run_id = f"ingest-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    rejects_dir = rejects or settings.data_dir / "rejects" / folder.resolve().name
    hasher = hasher_from(settings, demo)
    if bulk and settings.uses_external_server:
        raise ConfigurationError("--bulk loads the local server's store offline; it cannot be used with NEO4J_URI")
    with progress_bar("prepare", out) as progress:
        run = prepare(folder, hasher, batch_size, progress)
    write_rejects(run, rejects_dir)
    with open_graph(settings, out=out) as driver:
        with progress_bar("write", out) as progress:
            if bulk:
                server = LocalNeo4j.from_settings(settings)
                bulk_load(run, server, driver, settings.neo4j_database, run_id, progress)
                written, skipped = len(run.chunks), 0
            else:
                writer = BatchWriter(driver, settings.neo4j_database, run_id, job="ingest")
                written, skipped, _ = write_graph(run, writer, progress)
    seconds = (datetime.now(UTC) - started).total_seconds()
    _print_summary(out, run, rejects_dir, written, skipped, seconds)
    return {
        "run_id": run_id,
        "folder": str(folder),
        "rejects_dir": str(rejects_dir),
        "mode": "bulk" if bulk else "online",
        "chunks": {"total": len(run.chunks), "written": written, "skipped": skipped, "rows_each": CHUNK_ROWS},
        "batch_size": run.chunks_per_batch * CHUNK_ROWS,
        "seconds": round(seconds, 3),
        "quality": run.quality,
    }


def _print_summary(out: Console, run: PreparedRun, rejects_dir: Path, written: int, skipped: int,
                   seconds: float) -> None:
    table = Table(title=f"ingested {safe(run.folder)}", show_lines=False)
    for column in ("table", "read", "accepted", "rejected", "top reject reason"):
        table.add_column(column, justify="right" if column in ("read", "accepted", "rejected") else "left")
    for name, stats in run.quality["tables"].items():
        reasons = stats["reject_reasons"]
        top = max(reasons, key=reasons.get) if reasons else ""
        table.add_row(name, str(stats["read"]), str(stats["accepted"]), str(stats["rejected"]), safe(top))
    out.print(table)
    ok = "[green]every row accounted for[/green]" if run.accounted_for else "[red]rows unaccounted for![/red]"
    out.print(f"{ok}; {run.quality['unknown_account_references']} referenced account(s) not in this "
                  "folder's accounts table (kept as stub accounts unless already in the graph)")
    flagged = {k: v["flagged"] for k, v in run.quality["outliers"].items() if v["flagged"]}
    if flagged:
        out.print("outliers flagged: " + ", ".join(f"{k}={v}" for k, v in flagged.items()))
    out.print(f"ledger chunks ({CHUNK_ROWS} rows each): {written} written, {skipped} already committed (skipped), "
              f"{seconds:.1f} s")
    out.print(f"rejects and quality.json: {safe(rejects_dir)}")
