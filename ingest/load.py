"""One ingestion run: read a folder of exchange events, validate, write rejects and the quality summary,
then write the graph in batches, exactly once.

A batch's id is the hash of its content (write kind, schema version and rows), and rows are aggregated
and sorted deterministically, so the same folder always yields the same batches: a rerun skips what
committed, and ingesting the same folder twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import pandas as pd

from graph.errors import GraphWriteError
from graph.queries.ingest import WRITES_BY_NAME
from graph.schema import SCHEMA_VERSION
from graph.writer import BatchWriter, columns, split
from ingest.graph_rows import build_graph_rows
from ingest.privacy import Hasher, digest_text
from ingest.quality import null_rates, quality_summary
from ingest.read import ROW, find_tables, read_table
from ingest.validate import TableValidation, validate_table

DEFAULT_BATCH_SIZE = 10_000
Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``."""


@dataclass(frozen=True)
class Batch:
    kind: str
    batch_id: str
    start: int
    stop: int


@dataclass
class PreparedRun:
    """Everything a run writes, computed before any write: validated tables, graph rows, batches."""

    folder: Path
    validations: dict[str, TableValidation]
    graph_rows: dict[str, pd.DataFrame]
    batches: list[Batch]
    quality: dict[str, Any]

    @property
    def accounted_for(self) -> bool:
        return all(v.read == len(v.accepted) + len(v.rejects) for v in self.validations.values())


@dataclass
class IngestReport:
    run_id: str
    folder: str
    rejects_dir: str
    tables: dict[str, dict[str, int]]
    batches_total: int
    batches_written: int
    batches_skipped: int
    rows_written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def batch_id(kind: str, chunk: pd.DataFrame) -> str:
    """Content hash of one batch: the same rows of the same kind always get the same id."""
    digest = hashlib.sha256(f"{SCHEMA_VERSION}\x1f{kind}\x1f{','.join(chunk.columns)}\x1f".encode())
    digest.update(pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes())
    return digest_text(digest.digest())


def prepare(folder: Path, hasher: Hasher | None, batch_size: int = DEFAULT_BATCH_SIZE,
            progress: Progress | None = None) -> PreparedRun:
    """Read, validate and aggregate a folder; plan its batches. Touches no database."""
    tables = find_tables(folder)
    validations: dict[str, TableValidation] = {}
    nulls: dict[str, dict[str, float]] = {}
    for i, table in enumerate(tables):
        if progress:
            progress(f"validating {table.path.name}", i, len(tables))
        raw = read_table(table)
        nulls[table.contract.name] = null_rates(raw, table.contract.columns)
        validations[table.contract.name] = validate_table(raw, table.contract)
    if progress:
        progress("aggregating events", len(tables), len(tables))
    accepted = {name: v.accepted.drop(columns=[ROW]) for name, v in validations.items()}
    graph_rows = build_graph_rows(accepted, hasher)
    batches = [
        Batch(kind, batch_id(kind, frame.iloc[start:stop]), start, stop)
        for kind, frame in graph_rows.items()
        for start, stop in split(len(frame), batch_size)
    ]
    quality = quality_summary(validations, nulls, graph_rows)
    return PreparedRun(folder, validations, graph_rows, batches, quality)


def write_rejects(run: PreparedRun, rejects_dir: Path) -> None:
    """One CSV of rejected rows per table (header only when none), plus ``quality.json``."""
    rejects_dir.mkdir(parents=True, exist_ok=True)
    for name, v in run.validations.items():
        v.rejects.to_csv(rejects_dir / f"{name}.rejects.csv", index=False)
    (rejects_dir / "quality.json").write_text(json.dumps(run.quality, indent=2, default=str) + "\n", "utf-8")


def write_graph(run: PreparedRun, writer: BatchWriter, progress: Progress | None = None) -> tuple[int, int, dict[str, int]]:
    """Write every batch not yet committed. Returns (written, skipped, rows written per kind).

    Raises:
        GraphWriteError: a batch failed; the message says how far the run got and that a rerun resumes.
    """
    writer.ensure_constraints()
    done = writer.committed([b.batch_id for b in run.batches])
    written = skipped = 0
    rows_written: dict[str, int] = {}
    total = len(run.batches)
    for i, batch in enumerate(run.batches):
        if progress:
            progress(f"writing {batch.kind}", i, total)
        if batch.batch_id in done:
            skipped += 1
            continue
        kind = WRITES_BY_NAME[batch.kind]
        rows = columns(run.graph_rows[batch.kind].iloc[batch.start : batch.stop])
        try:
            landed = writer.write(kind, rows, batch.batch_id)
        except GraphWriteError as e:
            raise GraphWriteError(
                f"{e} — {written + skipped} of {total} batches are committed; rerun the same command to "
                "resume (committed batches are skipped)"
            ) from e
        if landed:
            written += 1
            rows_written[batch.kind] = rows_written.get(batch.kind, 0) + batch.stop - batch.start
        else:
            skipped += 1
    if progress:
        progress("done", total, total)
    return written, skipped, rows_written


def ingest_folder(
    folder: Path,
    driver: neo4j.Driver,
    database: str,
    rejects_dir: Path,
    hasher: Hasher | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> IngestReport:
    """Ingest one folder of exchange events into Neo4j (see the module docstring for guarantees)."""
    started = datetime.now(UTC)
    run_id = run_id or f"ingest-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run = prepare(folder, hasher, batch_size, progress)
    write_rejects(run, rejects_dir)
    writer = BatchWriter(driver, database, run_id, job="ingest")
    written, skipped, rows_written = write_graph(run, writer, progress)
    return IngestReport(
        run_id=run_id,
        folder=str(folder),
        rejects_dir=str(rejects_dir),
        tables={n: {"read": v.read, "accepted": len(v.accepted), "rejected": len(v.rejects)}
                for n, v in run.validations.items()},
        batches_total=len(run.batches),
        batches_written=written,
        batches_skipped=skipped,
        rows_written=rows_written,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )
