"""Erased accounts stay erased: an ingestion run withholds every row of an account that has a tombstone.

``ringwatch erase`` (:mod:`serving.erasure`) leaves an ``(:Erasure {account_hash})`` tombstone: the keyed hash
of the account id (:func:`erasure_hash`, with ``RINGWATCH_HASH_KEY``), never the id itself. Before a run
writes, :func:`drop_erased` looks up the tombstones, and withholds from the write:

- the erased account's own rows (its ``Account`` row, stub row, label) and every relationship row with it at
  either end (its devices, IPs, cards, emails, phones, wallets, promo redemptions, transfers and referrals to
  or from it);
- identifier rows (a device, a card, an email …) that in this run only erased accounts use, so that an old
  export does not bring back a device fingerprint with nobody attached.

Withheld rows stay in their part (:attr:`ingest.load.PreparedRun.withheld`): the part's identity and chunks are
those of the folder as read, so re-ingesting a folder ingested before the erasure still finds its chunks
committed and writes nothing twice. The run reports the input rows skipped per table.
"""

from __future__ import annotations

from typing import Final

import neo4j
import numpy as np
import pandas as pd

from graph import schema as s
from graph.errors import ConfigurationError
from graph.queries.erasure import TOMBSTONE_HASHES
from graph.queries.ingest import WRITES_BY_NAME
from ingest.contract import TABLES_BY_NAME
from ingest.load import PreparedRun
from ingest.privacy import Hasher

#: The ``kind`` of the keyed hash of an erased account's id (see :meth:`Hasher.digest`).
ERASED_ACCOUNT: Final = "erased-account"


def erasure_hash(hasher: Hasher, account_id: str) -> str:
    """The tombstone key of ``account_id``: its keyed hash (the id itself is never kept)."""
    return hasher.digest(ERASED_ACCOUNT, account_id)


def tombstones(driver: neo4j.Driver, database: str) -> set[str]:
    """Every tombstone's account hash in the graph."""
    records, _, _ = driver.execute_query(TOMBSTONE_HASHES, database_=database, routing_=neo4j.RoutingControl.READ)
    return {r["account_hash"] for r in records}


def erased_accounts(run: PreparedRun, hashes: set[str], hasher: Hasher) -> set[str]:
    """The account ids this run mentions (anywhere) whose hash has a tombstone."""
    mentioned: set[str] = set()
    for name, validation in run.validations.items():
        contract = TABLES_BY_NAME[name]
        for column in {*contract.account_refs, *(("account_id",) if "account_id" in contract.columns else ())}:
            mentioned.update(validation.accepted[column].dropna().astype(str))
    return {a for a in mentioned if erasure_hash(hasher, a) in hashes}


def _owner_columns(name: str) -> tuple[str, ...]:
    """The columns that say whose row it is: ``account_id``, or both ends of a transfer."""
    contract = TABLES_BY_NAME[name]
    return ("account_id",) if "account_id" in contract.columns else contract.account_refs


def withhold(run: PreparedRun, erased: set[str]) -> dict[str, int]:
    """Mark the rows of ``erased`` accounts (and identifiers only they use in this run) as withheld.

    Returns:
        Input rows of erased accounts per table (they are skipped; the rest of the table is written).
    """
    if not erased:
        return {}
    ids = pd.Index(sorted(erased))
    # Identifier keys used by erased accounts, and by anyone else, in this run's relationship rows.
    used_by_erased: dict[str, set[object]] = {}
    used_by_others: dict[str, set[object]] = {}
    for part in run.parts:
        kind = WRITES_BY_NAME[part.kind]
        if kind.rel is None or kind.rel.target == s.ACCOUNT:
            continue
        from_erased = np.array(part.rows["src"].isin(ids), dtype=bool)
        target = kind.rel.target.label
        used_by_erased.setdefault(target, set()).update(part.rows["dst"][from_erased])
        used_by_others.setdefault(target, set()).update(part.rows["dst"][~from_erased])
    for i, part in enumerate(run.parts):
        kind = WRITES_BY_NAME[part.kind]
        if kind.rel is not None:
            mask = np.array(part.rows["src"].isin(ids), dtype=bool)
            if kind.rel.target == s.ACCOUNT:
                mask |= np.array(part.rows["dst"].isin(ids), dtype=bool)
        elif kind.node == s.ACCOUNT:
            mask = np.array(part.rows[s.ACCOUNT.key].isin(ids), dtype=bool)
        elif kind.node is not None:
            only_erased = used_by_erased.get(kind.node.label, set()) - used_by_others.get(kind.node.label, set())
            mask = np.array(part.rows[kind.node.key].isin(list(only_erased)), dtype=bool)
        else:
            continue
        if mask.any():
            run.withheld[i] = mask
    skipped = {}
    for name, validation in run.validations.items():
        frame = validation.accepted
        hit = np.zeros(len(frame), dtype=bool)
        for column in _owner_columns(name):
            hit |= np.array(frame[column].isin(ids), dtype=bool)
        if hit.any():
            skipped[name] = int(hit.sum())
    return skipped


def drop_erased(run: PreparedRun, driver: neo4j.Driver, database: str, hasher: Hasher | None) -> dict[str, int]:
    """Withhold the rows of every account of ``run`` that has a tombstone in the graph.

    Returns:
        Input rows skipped per table (empty when no account of the run is erased).

    Raises:
        ConfigurationError: the graph holds tombstones but no hash key is configured to match them.
    """
    hashes = tombstones(driver, database)
    if not hashes:
        return {}
    if hasher is None:
        raise ConfigurationError(
            f"the graph holds {len(hashes)} erased account(s); RINGWATCH_HASH_KEY is needed to keep them erased "
            "(their tombstones hold keyed hashes of their ids)"
        )
    return withhold(run, erased_accounts(run, hashes, hasher))
