"""The ingestion job: one folder of exchange events into the graph, online or as a bulk first load.

``ingest_folder`` is what ``ringwatch ingest`` runs, and what a notebook or another program calls: read,
validate and aggregate the folder (:func:`ingest.load.prepare`), skip the rows of erased accounts
(:mod:`ingest.erasure`), write rejects and the quality report, then write the graph exactly once
(:func:`ingest.load.write_graph`) or bulk-load an empty local database (:func:`ingest.bulk.bulk_load`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import neo4j

from graph.errors import ConfigurationError
from graph.local_server import LocalNeo4j
from graph.logs import logger
from graph.runs import Progress, new_run_id, run_scope
from graph.settings import Settings
from graph.writer import BatchWriter
from ingest.bulk import bulk_load
from ingest.erasure import drop_erased
from ingest.load import CHUNK_ROWS, DEFAULT_BATCH_SIZE, PreparedRun, prepare, write_graph, write_rejects
from ingest.privacy import Hasher, load_or_create_demo_key

#: The demo's generated hash key, kept in the data folder (``ringwatch demo`` only).
DEMO_KEY_FILE: Final = "demo_hash_key"

log = logger(__name__)


@dataclass
class IngestReport:
    """What one ingestion run did.

    Attributes:
        run_id: the run's id (on every ledger node it wrote).
        folder: the folder ingested.
        rejects_dir: where the reject files and ``quality.json`` are.
        mode: ``online`` or ``bulk``.
        chunks: ``{"total", "written", "skipped", "rows_each"}`` — ledger chunks written now and already
            committed before.
        batch_size: rows per write transaction (``--batch-size`` rounded up to whole chunks).
        seconds: the run's duration.
        quality: the data-quality report (``quality.json``).
        erased_rows: rows skipped per table because they belong to erased accounts.
        accounted_for: every table's rows read = accepted + rejected.
    """

    run_id: str
    folder: str
    rejects_dir: str
    mode: str
    chunks: dict[str, int]
    batch_size: int
    seconds: float
    quality: dict[str, Any] = field(repr=False)
    erased_rows: dict[str, int] = field(default_factory=dict)
    accounted_for: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data (``ringwatch ingest --json``)."""
        return asdict(self)


def hasher_from(settings: Settings, demo: bool = False) -> Hasher | None:
    """The hasher for personal data: ``RINGWATCH_HASH_KEY``, or for the demo a key kept in the data folder."""
    if settings.hash_key is not None:
        return Hasher(settings.hash_key.get_secret_value())
    if demo:
        return Hasher(load_or_create_demo_key(settings.data_dir / DEMO_KEY_FILE))
    return None


def ingest_folder(
    folder: Path,
    driver: neo4j.Driver,
    database: str,
    rejects_dir: Path,
    hasher: Hasher | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    run_id: str | None = None,
    bulk_server: LocalNeo4j | None = None,
    on_bulk_loaded: Callable[[PreparedRun], None] | None = None,
) -> IngestReport:
    """Ingest one folder of exchange events into Neo4j (idempotent, resumable; see :mod:`ingest.load`).

    Args:
        folder: the folder of tables (``<table>.csv`` or ``.parquet``).
        driver: an open driver (the caller owns it).
        database: the database name.
        rejects_dir: where reject files and ``quality.json`` go.
        hasher: keyed hashes for cards, emails and phones (None: a folder holding them is refused).
        batch_size: rows per write transaction, rounded up to whole :data:`~ingest.load.CHUNK_ROWS` chunks.
        progress: called as ``progress(stage, done, total)``.
        run_id: the run's id (default: a new ``ingest-…`` id).
        bulk_server: load an *empty* database of this local server with the offline importer instead.
        on_bulk_loaded: called with the prepared run once the bulk load is done (its rows are the whole graph:
            the CLI writes the training snapshot from them, without reading the graph back).

    Returns:
        The run's report.

    Raises:
        ValueError: ``batch_size`` is not positive.
        InputContractError: a table breaks the input contract as a whole.
        ConfigurationError: personal data without a hash key.
        GraphWriteError: a write failed (the message says how far the run got; rerunning resumes).
    """
    started = time.perf_counter()
    run_id = run_id or new_run_id("ingest")
    with run_scope(run_id):
        log.info("ingesting %s", folder, extra={"folder": str(folder), "mode": "bulk" if bulk_server else "online"})
        run = prepare(folder, hasher, batch_size, progress)
        erased = drop_erased(run, driver, database, hasher)
        write_rejects(run, rejects_dir)
        if bulk_server is not None:
            bulk_load(run, bulk_server, driver, database, run_id, progress)
            written, skipped = len(run.chunks), 0
            if on_bulk_loaded is not None:
                on_bulk_loaded(run)
        else:
            writer = BatchWriter(driver, database, run_id, job="ingest")
            written, skipped, _ = write_graph(run, writer, progress)
        report = IngestReport(
            run_id=run_id,
            folder=str(folder),
            rejects_dir=str(rejects_dir),
            mode="bulk" if bulk_server is not None else "online",
            chunks={"total": len(run.chunks), "written": written, "skipped": skipped, "rows_each": CHUNK_ROWS},
            batch_size=run.chunks_per_batch * CHUNK_ROWS,
            seconds=round(time.perf_counter() - started, 3),
            quality=run.quality,
            erased_rows=erased,
            accounted_for=run.accounted_for,
        )
        log.info(
            "ingested %s: %d chunks written, %d already committed, %d rows of erased accounts skipped",
            folder,
            written,
            skipped,
            sum(erased.values()),
            extra={"chunks": report.chunks},
        )
    return report


def ingest_with_settings(
    settings: Settings,
    driver: neo4j.Driver,
    folder: Path,
    rejects: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    bulk: bool = False,
    demo: bool = False,
    progress: Progress | None = None,
    on_bulk_loaded: Callable[[PreparedRun], None] | None = None,
) -> IngestReport:
    """:func:`ingest_folder` with what the settings decide: the hash key, the default rejects folder, the
    local server for ``bulk``.

    Raises:
        ConfigurationError: ``bulk`` with a server of one's own (``NEO4J_URI``).
    """
    if bulk and settings.uses_external_server:
        raise ConfigurationError("--bulk loads the local server's store offline; it cannot be used with NEO4J_URI")
    rejects_dir = rejects or settings.data_dir / "rejects" / folder.resolve().name
    return ingest_folder(
        folder,
        driver,
        settings.neo4j_database,
        rejects_dir,
        hasher_from(settings, demo),
        batch_size,
        progress,
        bulk_server=LocalNeo4j.from_settings(settings) if bulk else None,
        on_bulk_loaded=on_bulk_loaded,
    )
