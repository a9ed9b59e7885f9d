"""Bulk first load: the same rows as online ingestion, built into a new store by ``neo4j-admin import``.

Only for an empty database on the server ringwatch manages (the importer needs the server stopped and
writes the store files directly). Afterwards the constraints are created as online ingestion creates them,
and the ledger holds every chunk online ingestion would have written, so rerunning the folder online (with any
batch size) is a no-op and newer folders extend the graph as usual.
"""

from __future__ import annotations

import shutil
import time

import neo4j
import pandas as pd

from graph.bulk_import import write_import_files
from graph.errors import GraphWriteError
from graph.local_server import LocalNeo4j
from graph.queries.inspect import count_nodes
from graph.runs import Progress
from graph.writer import BatchWriter
from ingest.load import PreparedRun


def bulk_load(
    run: PreparedRun,
    server: LocalNeo4j,
    driver: neo4j.Driver,
    database: str,
    run_id: str,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Load a prepared run into an empty local database with the offline importer.

    The store is replaced, so bookmarks that open drivers hold no longer apply: use a new driver afterwards
    for anything that relies on the driver's bookmark manager (``execute_query``).

    Returns:
        Seconds spent per step (``files``, ``import``, ``restart``, ``constraints``).

    Raises:
        GraphWriteError: the database is not empty, or the importer failed (its output quoted).
    """
    existing = count_nodes(driver, database)
    if existing:
        raise GraphWriteError(
            f"bulk load needs an empty database, but {database!r} holds {existing} nodes; "
            "ingest without --bulk to extend it"
        )
    timings: dict[str, float] = {}
    t = time.perf_counter()
    steps = 4

    def step(name: str, i: int) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now
        if progress:
            progress(name, i, steps)

    import_dir = server.layout.import_dir / run_id
    ledger = pd.DataFrame(
        {
            "batch_id": [c.chunk_id for c in run.chunks],
            "kind": [run.parts[c.part].kind for c in run.chunks],
            "part_id": [run.part_ids[c.part] for c in run.chunks],
            "chunk": [c.index for c in run.chunks],
            "rows": [c.rows for c in run.chunks],
            "run_id": run_id,
            "committed_at": int(time.time() * 1000),
        }
    )
    files = write_import_files(run.graph_rows, ledger, import_dir)
    step("files", 1)
    server.stop()
    try:
        server.run_admin(files.admin_args(database))
    except Exception as e:
        raise GraphWriteError(f"neo4j-admin import failed; the database was left empty or unchanged: {e}") from e
    finally:
        step("import", 2)
        server.start()
        step("restart", 3)
        shutil.rmtree(import_dir, ignore_errors=True)
    BatchWriter(driver, database, run_id, job="bulk-import").ensure_constraints()
    step("constraints", 4)
    return timings
