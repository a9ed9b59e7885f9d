"""``POST /v1/events``: one event, checked by batch ingestion's rules and written exactly once.

:class:`EventWriter` is the API's path, sized for one row: the contract's checks run on the row's cells, its
graph parts are built directly (:mod:`serving.api.event_rows`: the same parts, hence the same content ids, as
batch ingestion makes of a one-row table), and one write transaction asks whether an account of the event is
erased and which of its ledger chunks are committed (:data:`graph.queries.events.EVENT_PRECHECK`), then writes
the missing parts with ingestion's own queries and ledger entries. The schema's constraints are ensured once
per writer, not per event. A refused row is validated by :func:`ingest.validate.validate_table` itself for its
message; an event of an erased account, or a server without a hash key, takes :func:`write_event`.

:func:`write_event` is batch ingestion's whole path for one row: the event becomes a one-row table of the
input contract, as text (what :func:`ingest.read.read_table` makes of a file), and goes through the same
functions as a folder: :func:`ingest.validate.validate_table` (a broken rule is refused with its name, nothing
written), :func:`ingest.graph_rows.build_graph_parts`, :func:`ingest.load.part_id` (the content hash),
:func:`ingest.erasure.drop_erased` and :func:`ingest.load.write_graph` with the ingestion ledger.

Either way a part's identity is the hash of its rows, so the same event sent twice — a client's retry — is the
same chunk, which the ledger lets land once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import pandas as pd
from neo4j.exceptions import ConstraintError, Neo4jError, ServiceUnavailable, SessionExpired

from graph.errors import GraphWriteError, RingwatchError
from graph.queries import ingest as iq
from graph.queries.events import EVENT_PRECHECK, RECORD_EVENT_CHUNKS
from graph.runs import new_run_id
from graph.writer import BatchWriter, columns, ensure_schema
from ingest.contract import TABLES_BY_NAME, TableContract
from ingest.erasure import drop_erased, erasure_hash
from ingest.graph_rows import GraphPart, build_graph_parts, combine_parts
from ingest.load import PreparedRun, part_id, plan_chunks, write_graph
from ingest.privacy import Hasher
from ingest.read import ROW
from ingest.validate import validate_table
from serving.api.event_rows import event_parts, event_table, row_cells, row_passes

#: Attempts of the event's transaction when a concurrent copy of it commits some of its chunks first.
WRITE_ATTEMPTS = 3


class EventRejectedError(RingwatchError):
    """The event breaks the input contract: ``rule`` is the first broken rule (``column: rule``)."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"the event breaks the input contract: {rule}")
        self.rule = rule


@dataclass(frozen=True)
class WrittenEvent:
    """An event written (or found already written)."""

    event_id: str
    written: bool
    account_id: str


def event_frame(contract: TableContract, row: dict[str, Any]) -> pd.DataFrame:
    """The one-row text table a file holding ``row`` reads as (empty or missing cells are missing values).

    Raises:
        EventRejectedError: ``row`` names a column the table does not have.
    """
    unknown = sorted(set(row) - set(contract.columns))
    if unknown:
        raise EventRejectedError(f"{unknown[0]}: not a column of {contract.name} ({', '.join(contract.columns)})")
    cells = {c: _text(row.get(c)) for c in contract.columns}
    frame = pd.DataFrame({c: pd.array([v], dtype="string") for c, v in cells.items()})
    for column in contract.columns:
        frame[column] = frame[column].str.strip().replace("", pd.NA)
    frame.insert(0, ROW, [1])
    return frame


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def subject_account(contract: TableContract, row: dict[str, Any]) -> str:
    """The account an event is about: the account for sign-ups and most events, the sender of a transfer."""
    column = "account_id" if "account_id" in contract.columns else contract.account_refs[0]
    return str(row[column]).strip()


def write_event(
    driver: neo4j.Driver, database: str, table: str, row: dict[str, Any], hasher: Hasher | None
) -> WrittenEvent:
    """Validate and write one event exactly once (see the module docstring).

    Raises:
        EventRejectedError: the row breaks a rule of the contract (nothing is written).
        ConfigurationError: the event holds personal data (card, email, phone) and no hash key is set.
        GraphWriteError: the write failed.
    """
    contract = TABLES_BY_NAME[table]
    validation = validate_table(event_frame(contract, row), contract)
    if len(validation.rejects):
        raise EventRejectedError(str(validation.rejects["reason"].iloc[0]).split("; ")[0])
    accepted = validation.accepted.drop(columns=[ROW])
    parts = build_graph_parts({table: accepted}, hasher)
    ids = [part_id(p) for p in parts]
    run = PreparedRun(
        folder=Path("api"),
        validations={table: validation},
        parts=parts,
        part_ids=ids,
        chunks=plan_chunks(parts, ids),
        batch_size=max(len(parts), 1) * 100,
        quality={},
        graph_rows=combine_parts(parts),
    )
    drop_erased(run, driver, database, hasher)
    written, _skipped, _ = write_graph(run, BatchWriter(driver, database, new_run_id("event"), job="api-event"))
    event_id = hashlib.sha256("\x1f".join(ids).encode()).hexdigest()[:32]
    return WrittenEvent(event_id, written > 0, subject_account(contract, row))


def _event_id(ids: list[str]) -> str:
    return hashlib.sha256("\x1f".join(ids).encode()).hexdigest()[:32]


class EventWriter:
    """Writes single events exactly once, each in one transaction (see the module docstring).

    Args:
        driver: an open driver (not closed here).
        database: the database.
        hasher: the personal-data hasher (None: no hash key; events then take :func:`write_event`).
        timeout_s: the write transaction's timeout.
    """

    def __init__(self, driver: neo4j.Driver, database: str, hasher: Hasher | None, timeout_s: float) -> None:
        self.driver, self.database, self.hasher, self.timeout_s = driver, database, hasher, timeout_s
        self._schema_ready = False

    def write(self, table: str, row: dict[str, Any]) -> WrittenEvent:
        """Validate and write one event exactly once.

        Raises:
            EventRejectedError: the row breaks a rule of the contract (nothing is written).
            ConfigurationError: the event holds personal data (card, email, phone) and no hash key is set.
            GraphWriteError: the write failed (nothing of it is kept).
        """
        contract = TABLES_BY_NAME[table]
        try:
            cells = row_cells(contract, row)
        except ValueError as e:
            raise EventRejectedError(str(e)) from e
        if self.hasher is None:
            return write_event(self.driver, self.database, table, row, self.hasher)
        if not row_passes(contract, cells):
            validation = validate_table(event_table(contract, cells), contract)
            if len(validation.rejects):
                raise EventRejectedError(str(validation.rejects["reason"].iloc[0]).split("; ")[0])
            return write_event(self.driver, self.database, table, row, self.hasher)  # batch's own answer wins
        parts = event_parts(contract, cells, self.hasher)
        ids = [part_id(p) for p in parts]
        accounts = sorted({str(cells[c]) for c in _account_columns(contract) if cells[c] is not None})
        if not self._schema_ready:
            ensure_schema(self.driver, self.database)
            self._schema_ready = True
        written = self._write(parts, ids, [erasure_hash(self.hasher, a) for a in accounts])
        if written is None:  # an erased account: batch ingestion's path withholds its rows
            return write_event(self.driver, self.database, table, row, self.hasher)
        return WrittenEvent(_event_id(ids), written > 0, str(cells[_subject_column(contract)]))

    def _write(self, parts: list[GraphPart], ids: list[str], account_hashes: list[str]) -> int | None:
        """Write the parts not yet committed, and their ledger chunks, in one transaction; the chunks written
        (0: all were committed), or None when an account of the event is erased (nothing written)."""
        chunks = plan_chunks(parts, ids)
        run_id = new_run_id("event")

        def work(tx: neo4j.ManagedTransaction) -> int | None:
            record = tx.run(
                EVENT_PRECHECK, account_hashes=account_hashes, batch_ids=[c.chunk_id for c in chunks]
            ).single()
            if record is None or int(record["erased"]):
                return None
            committed = set(record["committed"])
            pending = [c for c in chunks if c.chunk_id not in committed]
            if not pending:
                return 0
            entries = [
                {
                    "id": c.chunk_id,
                    "index": c.index,
                    "rows": c.rows,
                    "kind": parts[c.part].kind,
                    "part_id": ids[c.part],
                }
                for c in pending
            ]
            tx.run(RECORD_EVENT_CHUNKS, chunks=entries, run_id=run_id).consume()
            landed = 0
            for chunk in pending:
                part = parts[chunk.part]
                kind = iq.WRITES_BY_NAME[part.kind]
                rows = part.rows.iloc[chunk.start : chunk.stop]
                result = tx.run(kind.cypher, {iq.ROWS_PARAM: columns(rows)}).single()
                if result is None or int(result["written"]) != len(rows):
                    raise GraphWriteError(
                        f"{kind.name}: matched {0 if result is None else result['written']} of {len(rows)} rows "
                        "(an endpoint node is missing); nothing of the event was kept"
                    )
                landed += 1
            return landed

        unit = neo4j.unit_of_work(
            timeout=self.timeout_s, metadata={"app": "ringwatch", "job": "api-event", "run_id": run_id}
        )(work)
        for _ in range(WRITE_ATTEMPTS):
            try:
                with self.driver.session(database=self.database) as session:
                    return session.execute_write(unit)
            except ConstraintError:
                continue  # a concurrent copy of this event committed a chunk first: look again
            except (ServiceUnavailable, SessionExpired) as e:
                raise GraphWriteError(f"Neo4j stopped answering while writing the event: {e}") from e
            except Neo4jError as e:
                raise GraphWriteError(f"the event could not be written: {e.message}") from e
        raise GraphWriteError(f"the event's ledger kept refusing it after {WRITE_ATTEMPTS} attempts")


def _account_columns(contract: TableContract) -> tuple[str, ...]:
    own = ("account_id",) if "account_id" in contract.columns else ()
    return (*own, *contract.account_refs)


def _subject_column(contract: TableContract) -> str:
    return "account_id" if "account_id" in contract.columns else contract.account_refs[0]
