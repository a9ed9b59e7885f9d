"""Erasure of an account (GDPR Art. 17): its node, what only it uses, its verdicts; a tombstone stays.

One write transaction per account (:func:`erase_account`): the tombstone ``(:Erasure {account_hash, at,
reason, run_id})`` is merged (an erasure repeated keeps the first one's time), then the account's personal
identifiers that no other account uses are deleted, then the verdicts about it, then its id is taken out of the
member lists of rings, then the account itself with every relationship it has. Identifiers other accounts
use stay, with their relationships to those accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import neo4j

from graph import schema as s

_A = s.ACCOUNT
_PERSONAL = " OR ".join(f"n:{spec.label}" for spec in s.PERSONAL_IDENTIFIER_NODES)

TOMBSTONE_HASHES: Final = f"MATCH (e:{s.ERASURE.label}) RETURN e.{s.ERASURE.key} AS account_hash"

MERGE_TOMBSTONE: Final = (
    f"OPTIONAL MATCH (old:{s.ERASURE.label} {{{s.ERASURE.key}: $account_hash}})\n"
    "WITH old IS NOT NULL AS existed\n"
    f"MERGE (e:{s.ERASURE.label} {{{s.ERASURE.key}: $account_hash}})\n"
    "  ON CREATE SET e.at = datetime({epochMillis: $at}), e.reason = $reason, e.run_id = $run_id\n"
    "RETURN existed"
)

#: Personal identifiers (devices, cards, IPs, emails, phones, wallets) used by this account and no other.
DELETE_OWN_IDENTIFIERS: Final = (
    f"MATCH (a:{_A.label} {{{_A.key}: $account_id}})-->(n)\n"
    f"WHERE ({_PERSONAL}) AND NOT EXISTS {{ MATCH (n)<--(other:{_A.label}) WHERE other <> a }}\n"
    "WITH DISTINCT n, labels(n)[0] AS label\n"
    "DETACH DELETE n\n"
    "RETURN label, count(*) AS n"
)

DELETE_VERDICTS: Final = (
    f"MATCH (v:{s.VERDICT.label})-[:{s.ABOUT.type}]->(:{_A.label} {{{_A.key}: $account_id}})\n"
    "DETACH DELETE v\n"
    "RETURN count(*) AS n"
)

#: Rings keep their members' ids in ``members``: the erased id is taken out (the next grouping recomputes).
REMOVE_FROM_RINGS: Final = (
    f"MATCH (r:{s.RING.label}) WHERE $account_id IN r.members\n"
    "WITH r, [m IN r.members WHERE m <> $account_id] AS kept\n"
    "SET r.members = kept, r.size = size(kept)\n"
    "RETURN count(r) AS n"
)

DELETE_ACCOUNT: Final = f"MATCH (a:{_A.label} {{{_A.key}: $account_id}})\nDETACH DELETE a\nRETURN count(*) AS n"


@dataclass(frozen=True)
class GraphErasure:
    """What erasing one account removed from the graph.

    Attributes:
        already_erased: a tombstone existed before (the call changed nothing else if ``account`` is 0).
        account: 1 when the account node was deleted, 0 when it was not in the graph.
        identifiers: deleted identifier nodes by label (those only this account used).
        verdicts: verdict nodes about the account deleted.
        rings: rings whose member lists held the account.
    """

    already_erased: bool
    account: int
    identifiers: dict[str, int]
    verdicts: int
    rings: int


def erase_account(
    driver: neo4j.Driver, database: str, account_id: str, account_hash: str, *, at_ms: int, reason: str, run_id: str
) -> GraphErasure:
    """Erase ``account_id`` from the graph and leave its tombstone, in one write transaction (idempotent)."""

    def work(tx: neo4j.ManagedTransaction) -> GraphErasure:
        def single(query: str, **params: Any) -> Any:
            record = tx.run(query, {"account_id": account_id, **params}).single()
            return record[0] if record else 0

        existed = bool(single(MERGE_TOMBSTONE, account_hash=account_hash, at=at_ms, reason=reason, run_id=run_id))
        identifiers = {r["label"]: int(r["n"]) for r in tx.run(DELETE_OWN_IDENTIFIERS, account_id=account_id)}
        verdicts = int(single(DELETE_VERDICTS))
        rings = int(single(REMOVE_FROM_RINGS))
        account = int(single(DELETE_ACCOUNT))
        return GraphErasure(existed, account, identifiers, verdicts, rings)

    unit = neo4j.unit_of_work(metadata={"app": "ringwatch", "job": "erase", "run_id": run_id})(work)
    with driver.session(database=database) as session:
        return session.execute_write(unit)
