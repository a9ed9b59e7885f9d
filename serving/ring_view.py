"""What the report reads of a ring: its node's properties, members, shared identifiers and money links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import neo4j

from graph import schema as s
from graph.queries import report as q
from serving.ring_grouping import SharedIdentifier


@dataclass(frozen=True)
class RingMember:
    """One member of a ring, as the report shows it."""

    account_id: str
    scores: dict[str, float | None]
    risk_score: float | None
    risk_label: str | None
    reasons: tuple[str, ...]
    known_label: str | None
    verdict: str | None
    created_at: int | None


@dataclass(frozen=True)
class MoneyLink:
    """A transfer or referral between two members of a ring."""

    src: str
    dst: str
    type: str
    asset: str | None
    count: int
    total: float | None


@dataclass
class RingView:
    """A ring with everything the report shows: its node's properties, members, identifiers, money links."""

    props: dict[str, Any]
    members: list[RingMember]
    identifiers: list[SharedIdentifier]
    links: list[MoneyLink]

    @property
    def ring_id(self) -> str:
        return str(self.props["ring_id"])


def read_rings(driver: neo4j.Driver, database: str, top: int) -> tuple[list[RingView], int]:
    """The ``top`` active rings (highest score, then size) with members, identifiers and money links.

    Returns:
        The rings, best first, and the number of active rings in all.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    read: dict[str, Any] = {"database_": database, "routing_": neo4j.RoutingControl.READ}
    records, _, _ = driver.execute_query(q.TOP_RINGS, status=q.ACTIVE, limit=top, **read)
    views = {r["ring"]["ring_id"]: RingView(dict(r["ring"]), [], [], []) for r in records}
    records, _, _ = driver.execute_query(q.RING_COUNT, status=q.ACTIVE, **read)
    total = int(records[0]["rings"])
    if not views:
        return [], total
    ids = list(views)
    records, _, _ = driver.execute_query(q.RING_MEMBERS, ring_ids=ids, **read)
    for r in records:
        views[r["ring_id"]].members.append(
            RingMember(
                account_id=str(r["account_id"]),
                scores={t: r[t] for t in s.THREATS},
                risk_score=r["risk_score"],
                risk_label=r["risk_label"],
                reasons=tuple(r["risk_reasons"] or ()),
                known_label=r["known_label"],
                verdict=r["verdict"],
                created_at=r["created_at"],
            )
        )
    records, _, _ = driver.execute_query(q.RING_IDENTIFIERS, ring_ids=ids, **read)
    for r in sorted(records, key=lambda r: (-len(r["members"]), r["users"], r["label"], r["key"])):
        views[r["ring_id"]].identifiers.append(
            SharedIdentifier(r["label"], str(r["key"]), tuple(sorted(r["members"])), int(r["users"]))
        )
    records, _, _ = driver.execute_query(q.RING_MONEY_LINKS, ring_ids=ids, **read)
    for r in records:
        views[r["ring_id"]].links.append(
            MoneyLink(str(r["src"]), str(r["dst"]), r["type"], r["asset"], int(r["count"]), r["total"])
        )
    return list(views.values()), total
