"""``POST /v1/events``: one event through batch ingestion's own steps, written exactly once.

The event becomes a one-row table of the input contract, as text (what :func:`ingest.read.read_table` makes of
a file), and goes through the same functions as a folder: :func:`ingest.validate.validate_table` (a broken
rule is refused with its name, nothing written), :func:`ingest.graph_rows.build_graph_parts`,
:func:`ingest.load.part_id` (the content hash), :func:`ingest.erasure.drop_erased` and
:func:`ingest.load.write_graph` with the ingestion ledger. A part's identity is the hash of its rows, so the
same event sent twice — a client's retry — is the same chunk, which the ledger lets land once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import pandas as pd

from graph.errors import RingwatchError
from graph.runs import new_run_id
from graph.writer import BatchWriter
from ingest.contract import TABLES_BY_NAME, TableContract
from ingest.erasure import drop_erased
from ingest.graph_rows import build_graph_parts, combine_parts
from ingest.load import PreparedRun, part_id, plan_chunks, write_graph
from ingest.privacy import Hasher
from ingest.read import ROW
from ingest.validate import validate_table


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
