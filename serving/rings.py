"""``ringwatch rings``: ring-level decisions — group risky accounts into rings, flag ring members, write ``Ring`` nodes.

Grouping itself is :mod:`serving.ring_grouping` (candidates → weighted ties → groups → a decision per group)
on the input :mod:`serving.ring_links` reads from Neo4j. This module turns the groups that are rings into
what investigators see:

**Ring members are flagged.** A member that its own score left ``clear`` (an elevated account, or a known
fraud account) gets the ring's kind as its ``risk_label``, ``risk_flagged_by: 'ring'`` and the reason
``member of ring R (…)`` first in its reasons. A later grouping that no longer puts it in a ring takes that
back (label ``clear`` again, the reason removed); a scoring run rewrites every label from scores anyway.

**A ring** has: ``kind`` — the threat with the largest summed score over its members; ``score`` — the mean
member risk score; ``mass`` — the grouping's score mass; ``size``; ``flagged_by_score`` and ``admitted``
(members flagged on their own score / flagged as members); ``first_seen``/``last_seen`` — its members'
activity span; an evidence summary (what the members share, money among them, known fraud labels); and its
members.

**Stable ids.** A new grouping keeps an existing ring's id when the two share most members: rings are
matched greedily by Jaccard similarity of their member sets, highest first, one to one, when it is at least
:data:`SAME_RING_JACCARD`. Unmatched rings get an id derived from their members (``R-`` + 10 hex digits of a
hash), so regrouping the same accounts gives the same id. Rings no longer found are retired, not deleted.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import neo4j
import numpy as np
import pandas as pd

from graph import schema as s
from graph.logs import logger
from graph.queries import rings as q
from graph.queries import scoring as qs
from graph.runs import new_run_id
from graph.writer import ensure_schema
from serving.ring_grouping import (
    GroupingPolicy,
    RingCandidates,
    RingNeighbours,
    find_groups,
    joining_members,
    known_benign,
    signup_burst,
    within_fpr_budget,
)
from serving.ring_links import read_candidates, read_ring_neighbours
from serving.score import latest_completed_run

log = logger(__name__)

SAME_RING_JACCARD = 0.5
_NOUNS = {q.IP_BLOCK: "network block", s.IP.label: "IP"}


@dataclass
class DetectedRing:
    """One ring: see the module docstring."""

    ring_id: str
    members: list[str]
    kind: str
    score: float
    mass: float
    first_seen: int
    last_seen: int
    evidence: str
    admitted: list[str] = field(default_factory=list)
    shared: dict[str, int] = field(default_factory=dict)
    internal_transfers: int = 0
    known_fraud: int = 0

    @property
    def size(self) -> int:
        return len(self.members)

    def props(self) -> dict[str, Any]:
        """The ``Ring`` node's properties."""
        return {
            "ring_id": self.ring_id,
            "kind": self.kind,
            "size": self.size,
            "score": round(self.score, 6),
            "mass": round(self.mass, 4),
            "admitted": len(self.admitted),
            "flagged_by_score": self.size - len(self.admitted),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "evidence": self.evidence,
            "members": self.members,
            "shared_identifiers": sum(self.shared.values()),
            "internal_transfers": self.internal_transfers,
            "known_fraud": self.known_fraud,
        }


def member_ring_id(members: list[str]) -> str:
    """The id a ring gets from its members when it matches no earlier ring."""
    return "R-" + hashlib.sha256("\x1f".join(sorted(members)).encode()).hexdigest()[:10]


def stable_ids(
    groups: list[list[str]], previous: dict[str, set[str]], threshold: float = SAME_RING_JACCARD
) -> list[str]:
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


def ring_kind(rows: pd.DataFrame) -> str:
    """The threat with the largest summed score over a ring's member rows (candidate rows)."""
    # A member without a threat's score (written by hand, or by an older job) counts its score for its label.
    by_label = pd.DataFrame(
        {t: np.where(rows["label"] == t, rows["score"].astype(float), 0.0) for t in s.THREATS}, index=rows.index
    )
    return str(rows[list(s.THREATS)].astype(float).fillna(by_label).sum().idxmax())


def describe(
    members: list[str],
    admitted: list[str],
    mass: float,
    candidates: RingCandidates,
    ring_id: str,
    joined: int = 0,
    policy: GroupingPolicy | None = None,
) -> DetectedRing:
    """A ring's kind, score, span and evidence from its members (see the module docstring); ``joined`` of the
    admitted members came in by the ring's expansion; its sign-up burst, if any, by ``policy``'s."""
    rows = candidates.accounts.set_index("account_id").loc[members]
    kind = ring_kind(rows)
    member_set = set(members)
    kinds: Counter[str] = Counter()
    for ident in candidates.shared:
        if len(member_set.intersection(ident.members)) >= 2:
            kinds[ident.label] += 1
    money = candidates.money
    inside = money[money["src"].isin(member_set) & money["dst"].isin(member_set)]
    transfers = int(inside.loc[inside["type"] == s.TRANSFERRED_TO.type, "count"].sum())
    referrals = int((inside["type"] == s.REFERRED.type).sum())
    known = int(rows["known_label"].isin(s.THREATS).sum() + (rows["verdict"] == s.CONFIRMED).sum())
    own = rows.loc[[m for m in members if m not in set(admitted)], "label"].value_counts()
    label_mix = ", ".join(f"{k} {v}" for k, v in own.items())
    parts = [f"{len(members)} members ({label_mix}{', ' if label_mix else ''}{len(admitted)} admitted as members)"]
    if kinds:
        parts.append(
            "share " + ", ".join(f"{n} {_NOUNS.get(lab, lab.lower())}{'s' * (n > 1)}" for lab, n in kinds.most_common())
        )
    if transfers:
        parts.append(f"{transfers} transfers among members")
    if referrals:
        parts.append(f"{referrals} referrals among members")
    policy = policy or GroupingPolicy()
    burst = signup_burst(rows["created_at"], policy)
    if burst is not None:
        signed_up = rows["created_at"].to_numpy(float)
        inside = int(((signed_up >= burst[0]) & (signed_up <= burst[1])).sum())
        parts.append(f"{inside} signed up within {policy.burst_days:g} days")
    if joined:
        parts.append(f"{joined} joined through ties to its members")
    if known:
        parts.append(f"{known} with known fraud labels or confirmed verdicts")
    return DetectedRing(
        ring_id=ring_id,
        members=sorted(members),
        kind=kind,
        score=float(rows["score"].mean()),
        mass=mass,
        first_seen=int(rows["first_seen"].min()),
        last_seen=int(rows["last_seen"].max()),
        evidence="; ".join(parts),
        admitted=sorted(admitted),
        shared=dict(kinds),
        internal_transfers=transfers,
        known_fraud=known,
    )


def detect_rings(
    candidates: RingCandidates,
    previous: dict[str, set[str]],
    policy: GroupingPolicy | None = None,
    neighbours: Callable[[list[str]], RingNeighbours] | None = None,
    run_fpr_target: float | None = None,
) -> list[DetectedRing]:
    """Rings among the candidates, ids kept stable against ``previous`` rings, top first.

    A ring's ``admitted`` members are those whose own label is ``clear`` and who are not known to be benign: the
    ring flags them. Rings over the false-positive budget are dropped, weakest first
    (:func:`serving.ring_grouping.within_fpr_budget`).

    Args:
        neighbours: reads the accounts tied to a list of ring members (:func:`serving.ring_links.read_ring_neighbours`
            or its in-memory twin); given, rings of ``policy.expand_kinds`` are expanded
            (:func:`serving.ring_grouping.joining_members`).
        run_fpr_target: the scoring run's target account FPR (None: it had none), the budget's target unless
            ``policy.max_account_fpr`` says otherwise.
    """
    policy = policy or GroupingPolicy()
    groups = [g for g in find_groups(candidates, policy) if g.is_ring]
    members = [list(g.members) for g in groups]
    joined: list[list[str]] = [[] for _ in groups]
    rows = candidates.accounts.set_index("account_id")
    expandable = [
        i
        for i, g in enumerate(groups)
        if len(g.members) <= policy.expand_max_size and ring_kind(rows.loc[g.members]) in policy.expand_kinds
    ]
    if neighbours is not None and policy.expand_ties > 0 and expandable:
        expanded = set(expandable)
        others = [m for i, ms in enumerate(members) if i not in expanded for m in ms]
        frontier = sorted({m for i in expandable for m in members[i]})
        created = dict(zip(candidates.accounts["account_id"], candidates.accounts["created_at"]))
        read: list[RingNeighbours] = []
        for _ in range(policy.expand_rounds):  # the accounts that joined bring their own ties to the ring
            read.append(neighbours(frontier))
            found = RingNeighbours(
                pd.concat([r.accounts for r in read], ignore_index=True).drop_duplicates("account_id"),
                pd.concat([r.ties for r in read], ignore_index=True),
            )
            current = [members[i] + joined[i] for i in expandable]
            created_at = {**dict(zip(found.accounts["account_id"], found.accounts["created_at"])), **created}
            joins = joining_members(current, found, policy, others, created_at)
            for i, join in zip(expandable, joins):
                joined[i] += join
            frontier = sorted(a for join in joins for a in join)
            if not frontier:
                break
        extra = found.accounts[~found.accounts["account_id"].isin(rows.index)]
        candidates = replace(candidates, accounts=pd.concat([candidates.accounts, extra], ignore_index=True))
    accounts = candidates.accounts
    benign = known_benign(accounts)
    never_flagged = set(accounts.loc[benign, "account_id"])
    unseen = accounts["created_at"] >= (candidates.unseen_after or 0)
    sample = set(accounts.loc[benign & unseen, "account_id"])  # the model did not learn them as negatives
    own = dict(zip(accounts["account_id"], accounts["label"]))
    would_flag = [[m for m in g.members + join if own[m] == s.CLEAR] for g, join in zip(groups, joined)]
    own_flagged = sum(own[m] != s.CLEAR for m in sample)
    ring_flagged = [len(sample.intersection(flag)) for flag in would_flag]
    target = policy.account_fpr_target(run_fpr_target)
    keep = within_fpr_budget(
        [g.mass / len(g.members) for g in groups],
        ring_flagged,
        own_flagged,
        candidates.known_benign,
        target,
        policy,
    )
    if not all(keep):
        log.warning(
            "of %d known-benign accounts the model did not train on, %d are flagged on their own score and rings "
            "would flag %d: the %d weakest of %d rings are dropped to keep the estimated account false-positive "
            "rate within %.2f %%",
            candidates.known_benign,
            own_flagged,
            sum(ring_flagged),
            keep.count(False),
            len(keep),
            100 * target,
        )
    kept = [i for i, k in enumerate(keep) if k]
    groups, joined, would_flag = [groups[i] for i in kept], [joined[i] for i in kept], [would_flag[i] for i in kept]
    ids = stable_ids([sorted(g.members + js) for g, js in zip(groups, joined)], previous)
    rings = []
    for g, join, flag, rid in zip(groups, joined, would_flag, ids):
        admitted = [m for m in flag if m not in never_flagged]  # a known-benign account is never flagged by a ring
        rings.append(describe(sorted(g.members + join), admitted, g.mass, candidates, rid, len(join), policy))
    return sorted(rings, key=lambda r: (-r.score, -r.size, r.ring_id))


def ring_reason(ring: DetectedRing) -> str:
    """The reason a ring member flagged by the ring carries."""
    return (
        f"{q.RING_REASON_PREFIX}{ring.ring_id} ({ring.kind}, {ring.size} members, "
        f"{ring.size - len(ring.admitted)} flagged on their own score)"
    )


class RunDecisions(NamedTuple):
    """What ring grouping takes from the latest completed scoring run (:func:`run_thresholds`).

    Attributes:
        run_id: its id; None when there is no run.
        thresholds: per threat (1.0 each when there is no run).
        train_end: its model's training period's end, epoch ms; None when unknown.
        fpr_target: its target account FPR; None when it ran under a review budget, or before policies were
            recorded.
    """

    run_id: str | None
    thresholds: dict[str, float]
    train_end: int | None
    fpr_target: float | None


def run_thresholds(driver: neo4j.Driver, database: str) -> RunDecisions:
    """The latest completed scoring run's decisions (:class:`RunDecisions`)."""
    run = latest_completed_run(driver, database)
    if run is None:
        return RunDecisions(None, {t: 1.0 for t in s.THREATS}, None, None)
    train_end = run.get("train_end")
    fpr_target = run.get("fpr_target")
    return RunDecisions(
        str(run["run_id"]),
        {t: float(run.get(f"threshold_{t}") or 1.0) for t in s.THREATS},
        int(train_end) * 1000 if train_end is not None else None,
        float(fpr_target) if fpr_target is not None else None,
    )


def run_rings(driver: neo4j.Driver, database: str, policy: GroupingPolicy | None = None) -> dict[str, Any]:
    """Group the graph's candidates into rings, flag their members and write the rings (module docstring).

    Returns:
        A summary: rings run id, scoring run id, counts, the rings (top first), seconds.
    """
    started = time.perf_counter()
    policy = policy or GroupingPolicy()
    ensure_schema(driver, database)
    scoring_run_id, thresholds, train_end, fpr_target = run_thresholds(driver, database)
    candidates = read_candidates(driver, database, thresholds, policy, unseen_after=train_end)
    records, _, _ = driver.execute_query(q.ACTIVE_RINGS, database_=database, routing_=neo4j.RoutingControl.READ)
    previous = {r["ring_id"]: set(r["members"] or []) for r in records}
    rings = detect_rings(
        candidates,
        previous,
        policy,
        lambda members: read_ring_neighbours(driver, database, members, thresholds, policy),
        fpr_target,
    )
    rings_run_id = new_run_id("rings")
    now = int(time.time() * 1000)
    params: dict[str, Any] = {
        "rings_run_id": rings_run_id,
        "scoring_run_id": scoring_run_id,
        "now": now,
        "database_": database,
    }
    for i in range(0, len(rings), 500):
        driver.execute_query(q.WRITE_RINGS, rings=[r.props() for r in rings[i : i + 500]], **params)
    members = [{"account_id": a, "ring_id": r.ring_id} for r in rings for a in r.members]
    for i in range(0, len(members), 10_000):
        driver.execute_query(q.WRITE_MEMBERS, members=members[i : i + 10_000], **params)
    flag = [{"account_id": a, "label": r.kind, "reason": ring_reason(r)} for r in rings for a in r.admitted]
    marks: dict[str, Any] = {
        "by_ring": s.FLAGGED_BY_RING,
        "by_score": s.FLAGGED_BY_SCORE,
        "clear": s.CLEAR,
        "prefix": q.RING_REASON_PREFIX,
        "rings_run_id": rings_run_id,
        "database_": database,
    }
    for i in range(0, len(flag), 10_000):
        driver.execute_query(q.FLAG_RING_MEMBERS, members=flag[i : i + 10_000], **marks)
    records, _, _ = driver.execute_query(q.UNFLAG_STALE_MEMBERS, **marks)
    unflagged = int(records[0]["unflagged"])
    records, _, _ = driver.execute_query(q.RETIRE_STALE, rings_run_id=rings_run_id, database_=database)
    retired = int(records[0]["retired"])
    if scoring_run_id:
        driver.execute_query(
            qs.UPDATE_RUN,
            run_id=scoring_run_id,
            database_=database,
            props={
                "rings": len(rings),
                "rings_run_id": rings_run_id,
                "ring_members": len(members),
                "ring_admitted": len(flag),
            },
        )
    kept = sum(r.ring_id in previous for r in rings)
    by_kind = Counter(r.kind for r in rings)
    accounts = candidates.accounts
    return {
        "rings_run_id": rings_run_id,
        "scoring_run_id": scoring_run_id,
        "candidates": len(accounts),
        "flagged_accounts": int((accounts["label"] != s.CLEAR).sum()),
        "shared_identifiers": len(candidates.shared),
        "rings": len(rings),
        "ring_members": len(members),
        "admitted": len(flag),
        "unflagged": unflagged,
        "by_kind": dict(by_kind),
        "kept_ids": kept,
        "new": len(rings) - kept,
        "retired": retired,
        "top": [r.props() for r in rings[:20]],
        "seconds": round(time.perf_counter() - started, 2),
    }


def ring_membership(driver: neo4j.Driver, database: str) -> dict[str, list[str]]:
    """Active ring id → member account ids."""
    records, _, _ = driver.execute_query(q.RING_MEMBERS, database_=database, routing_=neo4j.RoutingControl.READ)
    out: dict[str, list[str]] = defaultdict(list)
    for r in records:
        out[r["ring_id"]].append(r["account_id"])
    return dict(out)
