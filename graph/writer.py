"""Batched, exactly-once writes to Neo4j.

Each batch is written in one transaction together with its ledger entries: one ``(:ScoreBatch {batch_id})``
per batch of the scoring job's write-back, and for ingestion one ``(:IngestBatch {batch_id})`` per *chunk*
(a fixed slice of rows whose identity does not depend on the batch size; see :mod:`ingest.load`). The ledger's
uniqueness constraint makes an entry land at most once: a rerun after a kill (of the process or of Neo4j)
skips what committed and writes the rest, two runs at once cannot both commit the same entry, and the graph
ends exactly as an uninterrupted run leaves it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import neo4j
import pandas as pd
from neo4j.exceptions import ConstraintError, Neo4jError, ServiceUnavailable, SessionExpired

from graph import schema as s
from graph.errors import GraphWriteError
from graph.queries import ingest as q

Columns = dict[str, list[Any]]
"""A batch as columns: ``{column: [value, …]}``, every list as long as the batch."""


def columns(frame: pd.DataFrame) -> Columns:
    """A frame's columns as plain Python lists (numpy scalars unboxed, missing values as None)."""
    out: Columns = {}
    for name in frame.columns:
        col = frame[name]
        if col.hasnans:
            out[name] = col.astype(object).where(col.notna(), None).tolist()
        else:
            out[name] = col.tolist()
    return out


def batch_length(kind: q.WriteKind, batch: Columns) -> int:
    """Rows in ``batch``, after checking it holds exactly ``kind``'s columns, all of one length.

    Raises:
        ValueError: a column is missing or unexpected, or the columns differ in length.
    """
    if set(batch) != set(kind.columns):
        raise ValueError(f"batch for {kind.name} must have columns {list(kind.columns)}, got {list(batch)}")
    lengths = {len(values) for values in batch.values()}
    if len(lengths) != 1:
        raise ValueError(f"batch for {kind.name} has columns of different lengths: {sorted(lengths)}")
    return lengths.pop()


class BatchWriter:
    """Writes batches of rows with one :class:`~graph.queries.ingest.WriteKind` query each, exactly once.

    Args:
        driver: an open driver (the caller owns and closes it).
        database: the database name.
        run_id: recorded on every ledger node and in the transactions' metadata.
        job: the job name, in the transactions' metadata (visible in Neo4j's query log).
        ledger: the ledger node label (one per job, so each job's batches are counted on their own).
    """

    def __init__(
        self, driver: neo4j.Driver, database: str, run_id: str, job: str = "ingest", ledger: s.NodeSpec = s.INGEST_BATCH
    ) -> None:
        self._driver = driver
        self._database = database
        self.run_id = run_id
        self.ledger = ledger
        self._metadata = {"app": "ringwatch", "job": job, "run_id": run_id}
        self._record = q.record_batch(ledger)
        self._record_chunks = q.record_chunks(ledger)
        self._committed = q.committed_batches(ledger)

    def ensure_constraints(self) -> None:
        """Create every uniqueness constraint and index (idempotent); must run before the first write."""
        ensure_schema(self._driver, self._database)

    def committed(self, batch_ids: Sequence[str]) -> set[str]:
        """Which of ``batch_ids`` are already committed."""
        found: set[str] = set()
        chunk = 50_000
        for start in range(0, len(batch_ids), chunk):
            records_, _, _ = self._driver.execute_query(
                self._committed,
                batch_ids=list(batch_ids[start : start + chunk]),
                database_=self._database,
                routing_=neo4j.RoutingControl.READ,
            )
            found.update(r["batch_id"] for r in records_)
        return found

    def write(self, kind: q.WriteKind, batch: Columns, batch_id: str, params: dict[str, Any] | None = None) -> bool:
        """Write one batch (its rows as :func:`columns`) and its ledger entry in one transaction.

        ``params`` are further query parameters shared by every row (a run id, a model version).

        Returns:
            True if written now; False if the batch had already been committed (then nothing is written).

        Raises:
            GraphWriteError: the write failed, or matched fewer rows than it was given (a relationship whose
                endpoint is missing) — never silently.
            ValueError: ``batch`` does not hold ``kind``'s columns, all of one length.
        """
        n_rows = batch_length(kind, batch)
        record = (self._record, {"batch_id": batch_id, "kind": kind.name, "rows": n_rows, "run_id": self.run_id})
        return self._write(kind, batch, n_rows, record, [batch_id], {"batch_id": batch_id}, batch_id[:12], params)

    def write_chunks(
        self, kind: q.WriteKind, batch: Columns, part_id: str, chunks: Sequence[Mapping[str, Any]]
    ) -> bool:
        """Write the rows of several ledger chunks of one content part, and a ledger entry per chunk, in one
        transaction.

        Args:
            kind: the write.
            batch: the chunks' rows, in chunk order, as :func:`columns`.
            part_id: the content part the chunks belong to.
            chunks: ``{"id", "index", "rows"}`` per chunk; their ``rows`` add up to the batch's length.

        Returns:
            True if written now; False if any of the chunks had already been committed (by an earlier or a
            concurrent run): then nothing of this call is kept, and the caller writes the others again.

        Raises:
            GraphWriteError: as :meth:`write`.
            ValueError: as :meth:`write`, or the chunks' rows do not add up to the batch's length.
        """
        n_rows = batch_length(kind, batch)
        if sum(int(c["rows"]) for c in chunks) != n_rows:
            raise ValueError(f"chunks of {kind.name} hold {sum(int(c['rows']) for c in chunks)} rows, batch {n_rows}")
        record = (
            self._record_chunks,
            {"chunks": [dict(c) for c in chunks], "part_id": part_id, "kind": kind.name, "run_id": self.run_id},
        )
        shown = f"{part_id[:12]} chunks {chunks[0]['index']}-{chunks[-1]['index']}"
        return self._write(
            kind,
            batch,
            n_rows,
            record,
            [str(c["id"]) for c in chunks],
            {"part_id": part_id, "chunks": len(chunks)},
            shown,
            None,
        )

    def _write(
        self,
        kind: q.WriteKind,
        batch: Columns,
        n_rows: int,
        record: tuple[str, dict[str, Any]],
        ledger_ids: list[str],
        metadata: dict[str, Any],
        shown: str,
        params: dict[str, Any] | None,
    ) -> bool:
        """One transaction: the ledger entries (``record``: query and parameters, ``ledger_ids`` the entries'
        ids), then the rows."""

        def work(tx: neo4j.ManagedTransaction) -> int:
            tx.run(record[0], record[1]).consume()
            result = tx.run(kind.cypher, {**(params or {}), q.ROWS_PARAM: batch}).single()
            written = int(result["written"]) if result else 0
            if written != n_rows:
                # Raised inside the transaction function, so the whole batch (and its ledger entry) rolls back.
                raise GraphWriteError(
                    f"{kind.name} batch {shown} matched {written} of {n_rows} rows: an endpoint node "
                    "is missing from the graph; nothing of this batch was kept"
                )
            return written

        unit = neo4j.unit_of_work(metadata={**self._metadata, "kind": kind.name, **metadata})(work)
        try:
            with self._driver.session(database=self._database) as session:
                session.execute_write(unit)
        except ConstraintError as e:
            # Which constraint failed is read from the ledger, not from the error's text: when one of this
            # transaction's entries is committed now, another run (or an earlier attempt) wrote it first.
            if self.committed(ledger_ids):
                return False
            raise GraphWriteError(f"{kind.name} batch {shown}: constraint violated: {e.message}") from e
        except (ServiceUnavailable, SessionExpired) as e:
            raise GraphWriteError(f"Neo4j stopped answering while writing {kind.name}: {e}") from e
        except Neo4jError as e:
            raise GraphWriteError(f"{kind.name} batch {shown} failed: {e.message}") from e
        return True


def ensure_schema(driver: neo4j.Driver, database: str) -> None:
    """Create every uniqueness constraint and index of the schema (idempotent) and wait until they are online."""
    with driver.session(database=database) as session:
        for statement in (*q.constraint_statements(), *q.index_statements()):
            session.run(statement).consume()
        session.run(q.AWAIT_INDEXES).consume()


def split(n_rows: int, batch_size: int) -> Iterable[tuple[int, int]]:
    """Fixed-size [start, stop) ranges covering ``n_rows``."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for i in range(math.ceil(n_rows / batch_size)):
        yield i * batch_size, min(n_rows, (i + 1) * batch_size)
