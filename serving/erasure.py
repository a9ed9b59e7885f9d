"""``ringwatch erase``: erase an account (GDPR Art. 17) from the graph, the snapshots and the scoring plans.

What goes, and what stays:

- **the graph** (:func:`graph.queries.erasure.erase_account`, one transaction): the account node with every
  relationship it has; the devices, cards, IPs, emails, phones and wallets that no other account uses; the
  verdicts about it; its id in rings' member lists. Identifiers that other accounts use stay, with their
  relationships to those accounts.
- **a tombstone** ``(:Erasure {account_hash, at, reason, run_id})``, the keyed hash of the id (never the id),
  so that ingesting an old export again does not bring the account back (:mod:`ingest.erasure` withholds its
  rows and reports them).
- **on disk**: every snapshot under the data folder (and any given) that holds the account is rewritten without
  it (:func:`gnn.snapshot.erase_from_snapshot`); every scoring plan's row for it is blanked
  (:func:`serving.score.erase_from_plan`), and so is a challenger's shadow plan and disagreement set
  (:func:`serving.shadow.erase_from_challenger`).

Erasing again changes nothing and says so. Scores and rings are not recomputed here: the next ``ringwatch
score`` and ``ringwatch rings`` work on the graph without the account.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import neo4j

from gnn.snapshot import MANIFEST, erase_from_snapshot
from graph.errors import ConfigurationError
from graph.logs import logger
from graph.queries.erasure import erase_account as erase_in_graph
from graph.runs import new_run_id, run_scope
from graph.settings import Settings
from ingest.erasure import erasure_hash
from ingest.job import DEMO_KEY_FILE, hasher_from
from serving.score import PLAN_FILE, erase_from_plan
from serving.shadow import erase_from_challenger

log = logger(__name__)


@dataclass
class ErasureResult:
    """What one erasure did.

    Attributes:
        run_id: the erasure's run id (on its tombstone).
        already_erased: the account had been erased before.
        account_deleted: the account node was in the graph and is gone.
        identifiers: identifier nodes deleted (only this account used them), by label.
        verdicts: verdicts about the account deleted.
        rings: rings whose member lists held it.
        snapshots: snapshot folders rewritten without it.
        plans: scoring-plan folders whose row for it was blanked.
    """

    run_id: str
    already_erased: bool
    account_deleted: bool
    identifiers: dict[str, int]
    verdicts: int
    rings: int
    snapshots: list[str] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (``ringwatch erase --json``)."""
        return asdict(self)


def snapshot_folders(settings: Settings, extra: Iterable[Path] = ()) -> list[Path]:
    """The snapshots ringwatch keeps under the data folder (training and Ray scoring runs), plus ``extra``."""
    data = settings.data_dir.resolve()
    found = {p.parent for p in (data / "snapshots").glob(f"*/{MANIFEST}")}
    found |= {p.parent for p in (data / "scoring").glob(f"*/snapshot/{MANIFEST}")}
    found |= {Path(p).resolve() for p in extra}
    return sorted(found)


def plan_folders(settings: Settings) -> list[Path]:
    """The scoring runs' plan folders under the data folder."""
    return sorted(p.parent for p in (settings.data_dir.resolve() / "scoring").glob(f"*/{PLAN_FILE}"))


def erase(
    settings: Settings, driver: neo4j.Driver, account_id: str, reason: str = "", snapshots: Iterable[Path] = ()
) -> ErasureResult:
    """Erase ``account_id`` from the graph, the snapshots and the scoring plans; leave its tombstone.

    Args:
        settings: the hash key (``RINGWATCH_HASH_KEY``, or the demo's key) and the data folder.
        driver: an open driver (the caller owns it).
        account_id: the account to erase.
        reason: why (kept on the tombstone), e.g. a request's reference.
        snapshots: further snapshot folders to clean (those under the data folder always are).

    Raises:
        ValueError: ``account_id`` is empty.
        ConfigurationError: no hash key to make the tombstone with.
    """
    if not account_id:
        raise ValueError("account_id must not be empty")
    demo_key = (settings.data_dir / DEMO_KEY_FILE).exists()
    hasher = hasher_from(settings, demo=demo_key)
    if hasher is None:
        raise ConfigurationError(
            "erasure needs RINGWATCH_HASH_KEY: the tombstone holds the keyed hash of the "
            "account id, so that later ingestion can recognise the account"
        )
    run_id = new_run_id("erase")
    with run_scope(run_id):
        outcome = erase_in_graph(
            driver,
            settings.neo4j_database,
            account_id,
            erasure_hash(hasher, account_id),
            at_ms=int(time.time() * 1000),
            reason=reason,
            run_id=run_id,
        )
        rewritten = [str(f) for f in snapshot_folders(settings, snapshots) if erase_from_snapshot(f, account_id)]
        # both, whichever holds the account: a plan, and a challenger's shadow plan beside it
        blanked = [
            str(f)
            for f in plan_folders(settings)
            if erase_from_plan(f, account_id) | erase_from_challenger(f, account_id)
        ]
        result = ErasureResult(
            run_id,
            outcome.already_erased,
            bool(outcome.account),
            outcome.identifiers,
            outcome.verdicts,
            outcome.rings,
            rewritten,
            blanked,
        )
        log.info(
            "erased an account: %s",
            "node deleted" if result.account_deleted else "not in the graph",
            extra={
                "identifiers": result.identifiers,
                "verdicts": result.verdicts,
                "rings": result.rings,
                "snapshots": len(rewritten),
                "plans": len(blanked),
                "already_erased": result.already_erased,
            },
        )
    return result
