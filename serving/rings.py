"""``ringwatch rings``: group flagged accounts into rings through what they share, and write ``Ring`` nodes.

**Links.** Two flagged accounts are linked when they use the same identifier (device, card, IP, wallet,
email, phone, promo code), IPs in the same network block (IPv4 /24, IPv6 /64 — bot farms sign up from
many hosts of a few blocks), or when money or a referral passed between them. The super-node rule: an
identifier (or block) used by more than :data:`serving.reasons.SUPERNODE_CAP` accounts *in all* (flagged or not) links
nobody — carrier NATs, public Wi-Fi and popular promo codes would otherwise glue unrelated rings together.
Each shared identifier adds ``1 / log2(1 + users)`` to the link's weight (a device two accounts share
weighs more than an IP ninety share); each transfer or referral adds 1.

**Groups.** Connected components of the linked flagged accounts; a component larger than
:data:`SPLIT_ABOVE` is split by Louvain community detection (networkx, fixed seed), since chains of
accidental sharing can join separate rings. Groups of at least :data:`MIN_RING_SIZE` accounts are rings.

**A ring** has: ``kind`` — the threat with the largest summed score among its members' labels; ``score`` —
the mean member risk score; ``size``; ``first_seen``/``last_seen`` — its members' activity span; an evidence
summary (what the members share, money among them, known fraud labels); and its members.

**Stable ids.** A new grouping keeps an existing ring's id when the two share most members: rings are
matched greedily by Jaccard similarity of their member sets, highest first, one to one, when it is at least
:data:`SAME_RING_JACCARD`. Unmatched rings get an id derived from their members (``R-`` + 10 hex digits of a
hash), so regrouping the same accounts gives the same id. Rings no longer found are retired, not deleted.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import neo4j
import networkx as nx
import pandas as pd

from graph import schema as s
from graph.queries import rings as q
from graph.queries import scoring as qs
from graph.writer import ensure_schema
from serving.reasons import SUPERNODE_CAP

MIN_RING_SIZE = 3
SPLIT_ABOVE = 100
SAME_RING_JACCARD = 0.5
LOUVAIN_SEED = 0
_NOUNS = {q.IP_BLOCK: "network block", s.IP.label: "IP"}


@dataclass(frozen=True)
class SharedIdentifier:
    """An identifier that two or more flagged accounts use."""

    label: str
    key: str
    members: tuple[str, ...]
    users: int


@dataclass
class DetectedRing:
    """One ring: see the module docstring."""

    ring_id: str
    members: list[str]
    kind: str
    score: float
    first_seen: int
    last_seen: int
    evidence: str
    shared: dict[str, int] = field(default_factory=dict)
    internal_transfers: int = 0
    known_fraud: int = 0

    @property
    def size(self) -> int:
        return len(self.members)

    def props(self) -> dict[str, Any]:
        """The ``Ring`` node's properties."""
        return {"ring_id": self.ring_id, "kind": self.kind, "size": self.size, "score": round(self.score, 6),
                "first_seen": self.first_seen, "last_seen": self.last_seen, "evidence": self.evidence,
                "members": self.members, "shared_identifiers": sum(self.shared.values()),
                "internal_transfers": self.internal_transfers, "known_fraud": self.known_fraud}


def link_graph(accounts: pd.DataFrame, shared: list[SharedIdentifier], money: pd.DataFrame) -> nx.Graph:
    """The weighted graph of flagged accounts (see the module docstring)."""
    g = nx.Graph()
    g.add_nodes_from(accounts["account_id"])
    for ident in shared:
        w = 1.0 / math.log2(1 + ident.users)
        members = sorted(ident.members)
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                _add(g, a, b, w)
    for src, dst in zip(money["src"], money["dst"]):
        if src != dst and src in g and dst in g:
            _add(g, src, dst, 1.0)
    return g


def _add(g: nx.Graph, a: str, b: str, w: float) -> None:
    if g.has_edge(a, b):
        g[a][b]["weight"] += w
    else:
        g.add_edge(a, b, weight=w)


def group(g: nx.Graph, min_size: int = MIN_RING_SIZE, split_above: int = SPLIT_ABOVE,
          seed: int = LOUVAIN_SEED) -> list[list[str]]:
    """Member lists (sorted) of the groups of at least ``min_size`` accounts, largest first."""
    groups: list[list[str]] = []
    for component in nx.connected_components(g):
        if len(component) > split_above:
            parts = nx.community.louvain_communities(g.subgraph(component), weight="weight", seed=seed)
        else:
            parts = [component]
        groups.extend(sorted(p) for p in parts if len(p) >= min_size)
    return sorted(groups, key=lambda m: (-len(m), m[0]))


def member_ring_id(members: list[str]) -> str:
    """The id a ring gets from its members when it matches no earlier ring."""
    return "R-" + hashlib.sha256("\x1f".join(sorted(members)).encode()).hexdigest()[:10]


def stable_ids(groups: list[list[str]], previous: dict[str, set[str]],
               threshold: float = SAME_RING_JACCARD) -> list[str]:
    """An id per group: a previous ring's id when they match (see the module docstring), else a new one."""
    candidates = []
    for gi, members in enumerate(groups):
        m = set(members)
        for ring_id, old in previous.items():
            inter = len(m & old)
            if inter:
                jaccard = inter / len(m | old)
                if jaccard >= threshold:
                    candidates.append((-jaccard, ring_id, gi))
    ids: list[str | None] = [None] * len(groups)
    used: set[str] = set()
    for _, ring_id, gi in sorted(candidates):
        if ids[gi] is None and ring_id not in used:
            ids[gi], used = ring_id, used | {ring_id}
    out = []
    for gi, members in enumerate(groups):
        rid = ids[gi] or member_ring_id(members)
        if ids[gi] is None and rid in used:  # a new group hashing to a matched ring's id: keep ids unique
            rid = member_ring_id([*members, "\x00"])
        out.append(rid)
    return out


def describe(members: list[str], accounts: pd.DataFrame, shared: list[SharedIdentifier],
             money: pd.DataFrame, ring_id: str) -> DetectedRing:
    """A ring's kind, score, span and evidence from its members (``accounts`` indexed by account_id)."""
    rows = accounts.loc[members]
    weights = rows.groupby("label")["score"].sum()
    kind = str(weights.idxmax())
    member_set = set(members)
    kinds: Counter[str] = Counter()
    for ident in shared:
        if len(member_set.intersection(ident.members)) >= 2:
            kinds[ident.label] += 1
    inside = money[money["src"].isin(member_set) & money["dst"].isin(member_set)]
    transfers = int(inside.loc[inside["type"] == s.TRANSFERRED_TO.type, "count"].sum())
    referrals = int((inside["type"] == s.REFERRED.type).sum())
    known = int(rows["known_label"].isin(s.THREATS).sum() + (rows["verdict"] == s.CONFIRMED).sum())
    label_mix = ", ".join(f"{k} {v}" for k, v in rows["label"].value_counts().items())
    parts = [f"{len(members)} members ({label_mix})"]
    if kinds:
        parts.append("share " + ", ".join(f"{n} {_NOUNS.get(lab, lab.lower())}{'s' * (n > 1)}"
                                          for lab, n in kinds.most_common()))
    if transfers:
        parts.append(f"{transfers} transfers among members")
    if referrals:
        parts.append(f"{referrals} referrals among members")
    if known:
        parts.append(f"{known} with known fraud labels or confirmed verdicts")
    return DetectedRing(ring_id=ring_id, members=sorted(members), kind=kind, score=float(rows["score"].mean()),
                        first_seen=int(rows["first_seen"].min()), last_seen=int(rows["last_seen"].max()),
                        evidence="; ".join(parts), shared=dict(kinds), internal_transfers=transfers,
                        known_fraud=known)


def read_flagged(driver: neo4j.Driver, database: str, cap: int = SUPERNODE_CAP
                 ) -> tuple[pd.DataFrame, list[SharedIdentifier], pd.DataFrame]:
    """Flagged accounts, the identifiers they share and the money links among them, from Neo4j."""
    read = {"database_": database, "routing_": neo4j.RoutingControl.READ}
    records, _, _ = driver.execute_query(q.FLAGGED_ACCOUNTS, clear=s.CLEAR, **read)
    accounts = pd.DataFrame([dict(r) for r in records],
                            columns=["account_id", "label", "score", "known_label", "verdict", "run_id",
                                     "first_seen", "last_seen"])
    shared: list[SharedIdentifier] = []
    for rel in q.LINK_RELS:
        records, _, _ = driver.execute_query(q.shared_identifiers(rel), clear=s.CLEAR, cap=cap, **read)
        shared += [SharedIdentifier(r["label"], str(r["key"]), tuple(r["members"]), int(r["users"])) for r in records]
    records, _, _ = driver.execute_query(q.SHARED_IP_BLOCKS, clear=s.CLEAR, cap=cap, **read)
    shared += [SharedIdentifier(r["label"], str(r["key"]), tuple(r["members"]), int(r["users"])) for r in records]
    records, _, _ = driver.execute_query(q.MONEY_LINKS, clear=s.CLEAR, **read)
    money = pd.DataFrame([dict(r) for r in records], columns=["src", "dst", "type", "count"])
    return accounts, shared, money


def detect_rings(accounts: pd.DataFrame, shared: list[SharedIdentifier], money: pd.DataFrame,
                 previous: dict[str, set[str]], min_size: int = MIN_RING_SIZE) -> list[DetectedRing]:
    """Rings from flagged accounts and their links, ids kept stable against ``previous`` rings."""
    g = link_graph(accounts, shared, money)
    groups = group(g, min_size=min_size)
    ids = stable_ids(groups, previous)
    indexed = accounts.set_index("account_id")
    rings = [describe(m, indexed, shared, money, rid) for m, rid in zip(groups, ids)]
    return sorted(rings, key=lambda r: (-r.score, -r.size, r.ring_id))


def run_rings(driver: neo4j.Driver, database: str, cap: int = SUPERNODE_CAP,
              min_size: int = MIN_RING_SIZE) -> dict[str, Any]:
    """Group the flagged accounts of the graph into rings and write them (see the module docstring).

    Returns:
        A summary: rings run id, scoring run id, counts, the rings (top first), seconds.
    """
    started = time.perf_counter()
    ensure_schema(driver, database)
    accounts, shared, money = read_flagged(driver, database, cap)
    records, _, _ = driver.execute_query(q.ACTIVE_RINGS, database_=database, routing_=neo4j.RoutingControl.READ)
    previous = {r["ring_id"]: set(r["members"] or []) for r in records}
    rings = detect_rings(accounts, shared, money, previous, min_size)
    rings_run_id = f"rings-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    scoring_runs = accounts["run_id"].dropna().value_counts()
    scoring_run_id = str(scoring_runs.index[0]) if len(scoring_runs) else None
    now = int(time.time() * 1000)
    params = {"rings_run_id": rings_run_id, "scoring_run_id": scoring_run_id, "now": now, "database_": database}
    for i in range(0, len(rings), 500):
        driver.execute_query(q.WRITE_RINGS, rings=[r.props() for r in rings[i : i + 500]], **params)
    members = [{"account_id": a, "ring_id": r.ring_id} for r in rings for a in r.members]
    for i in range(0, len(members), 10_000):
        driver.execute_query(q.WRITE_MEMBERS, members=members[i : i + 10_000], **params)
    records, _, _ = driver.execute_query(q.RETIRE_STALE, rings_run_id=rings_run_id, database_=database)
    retired = int(records[0]["retired"])
    if scoring_run_id:
        driver.execute_query(qs.UPDATE_RUN, run_id=scoring_run_id, database_=database,
                             props={"rings": len(rings), "rings_run_id": rings_run_id, "ring_members": len(members)})
    kept = sum(r.ring_id in previous for r in rings)
    by_kind = Counter(r.kind for r in rings)
    return {"rings_run_id": rings_run_id, "scoring_run_id": scoring_run_id, "flagged_accounts": len(accounts),
            "shared_identifiers": len(shared), "rings": len(rings), "ring_members": len(members),
            "by_kind": dict(by_kind), "kept_ids": kept, "new": len(rings) - kept, "retired": retired,
            "top": [r.props() for r in rings[:20]], "seconds": round(time.perf_counter() - started, 2)}


def ring_membership(driver: neo4j.Driver, database: str) -> dict[str, list[str]]:
    """Active ring id → member account ids."""
    records, _, _ = driver.execute_query(q.RING_MEMBERS, database_=database, routing_=neo4j.RoutingControl.READ)
    out: dict[str, list[str]] = defaultdict(list)
    for r in records:
        out[r["ring_id"]].append(r["account_id"])
    return dict(out)
