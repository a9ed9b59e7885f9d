"""The input of ring grouping — candidates and what ties them — read from Neo4j, or built from a graph in memory.

Candidates are the accounts ring grouping considers (see :mod:`serving.ring_grouping`): *seeds* — flagged by
the scoring run on their own score, or known fraud (a fraud label, a confirmed verdict) — and *elevated*
accounts, whose score for some threat is at least that threat's floor (a share of its threshold, see
:func:`candidate_floors`). Accounts flagged by an earlier ring grouping, not by their score, are elevated
candidates again, never seeds, so a grouping never feeds on its own output.

:func:`read_candidates` reads them with the Cypher of :mod:`graph.queries.rings`; :func:`candidates_from_graph`
computes the same from a :class:`~gnn.graph_data.RiskGraph` and the scores, for benchmarks and notebooks
(an integration test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import scipy.sparse as sp

from gnn.graph_data import RiskGraph
from gnn.known_ties import MONEY_RELS, SHARED_RELS, account_links, incidence
from graph import schema as s
from graph.queries import rings as q
from ingest.graph_rows import ip_prefixes
from serving.ring_grouping import (
    TIE_COLUMNS,
    GroupingPolicy,
    RingCandidates,
    RingNeighbours,
    SharedIdentifier,
    known_fraud,
)

ACCOUNT_COLUMNS = [
    "account_id",
    "label",
    "score",
    *s.THREATS,
    "margin",
    "seed",
    "known_label",
    "verdict",
    "run_id",
    "first_seen",
    "last_seen",
    "created_at",
]


def candidate_floors(
    thresholds: Mapping[str, float], policy: GroupingPolicy, margin_quantile: float
) -> dict[str, float]:
    """Per threat, the score from which an account is an elevated candidate: ``admit_share`` of the threshold,
    and never below ``margin_quantile`` of it — the margin only ``elevated_share`` of all accounts exceed (a
    model whose scores are nearly flat would otherwise make every account a candidate)."""
    return {t: float(thresholds[t]) * max(policy.admit_share, margin_quantile) for t in s.THREATS}


def margin_quantile(all_margins: np.ndarray, policy: GroupingPolicy) -> float:
    """The margin that only ``elevated_share`` of accounts exceed (nearest rank, as Cypher's percentileDisc)."""
    if len(all_margins) == 0:
        return 0.0
    return float(np.quantile(all_margins, 1.0 - policy.elevated_share, method="inverted_cdf"))


def margins(scores: pd.DataFrame, thresholds: Mapping[str, float]) -> np.ndarray:
    """Per account, its largest score over the threat's threshold (>= 1: flagged on its own score)."""
    return np.max(
        np.stack(
            [scores[t].to_numpy(dtype=np.float64, na_value=0.0) / max(float(thresholds[t]), 1e-9) for t in s.THREATS],
            axis=1,
        ),
        axis=1,
    )


def read_candidates(
    driver: neo4j.Driver,
    database: str,
    thresholds: Mapping[str, float],
    policy: GroupingPolicy | None = None,
    unseen_after: int | None = None,
) -> RingCandidates:
    """Candidates, the identifiers two or more of them share and the money among them, from Neo4j.

    Args:
        thresholds: the scoring run's per-threat thresholds.
        policy: grouping knobs (``admit_share`` sets the candidates' floor, ``min_share`` filters identifiers).
        unseen_after: epoch ms from which accounts were not trained on (the model's training period's end; None:
            every account): the known-benign ones measure the rings' false-positive rate.
    """
    policy = policy or GroupingPolicy()
    read: dict[str, Any] = {"database_": database, "routing_": neo4j.RoutingControl.READ}
    by_property = {s.risk_property(t): float(thresholds[t]) for t in s.THREATS}
    records, _, _ = driver.execute_query(
        q.MARGIN_QUANTILE, thresholds=by_property, q=1.0 - policy.elevated_share, **read
    )
    quantile = float(records[0]["floor"] or 0.0) if records else 0.0
    floors = {s.risk_property(t): v for t, v in candidate_floors(thresholds, policy, quantile).items()}
    records, _, _ = driver.execute_query(
        q.CANDIDATE_ACCOUNTS,
        clear=s.CLEAR,
        threats=list(s.THREATS),
        confirmed=s.CONFIRMED,
        floors=floors,
        by_score=s.FLAGGED_BY_SCORE,
        **read,
    )
    accounts = _account_rows(records, thresholds)
    ids = accounts["account_id"].tolist()
    shared: list[SharedIdentifier] = []
    for cypher in [*(q.shared_identifiers(rel) for rel in q.LINK_RELS), q.SHARED_IP_BLOCKS]:
        records, _, _ = driver.execute_query(cypher, ids=ids, min_share=policy.min_share, **read)
        shared += [
            SharedIdentifier(r["label"], str(r["key"]), tuple(sorted(r["members"])), int(r["users"])) for r in records
        ]
    records, _, _ = driver.execute_query(q.MONEY_LINKS, ids=ids, **read)
    money = pd.DataFrame([dict(r) for r in records], columns=["src", "dst", "type", "count"])
    records, _, _ = driver.execute_query(
        q.COUNT_KNOWN_BENIGN, benign=s.BENIGN, false_positive=s.FALSE_POSITIVE, after=unseen_after or 0, **read
    )
    return RingCandidates(
        accounts.sort_values("account_id", ignore_index=True),
        sorted(shared, key=_order),
        money,
        int(records[0]["n"]),
        unseen_after,
    )


def _account_rows(records: list[neo4j.Record], thresholds: Mapping[str, float], seeds: bool = True) -> pd.DataFrame:
    """Candidate rows from :data:`graph.queries.rings.CANDIDATE_ACCOUNTS`-shaped records (``seeds=False``:
    nobody is a seed, as for a ring's neighbours)."""
    accounts = pd.DataFrame(
        [dict(r) for r in records], columns=[c for c in ACCOUNT_COLUMNS if c not in ("seed", "margin")]
    )
    accounts.insert(len(s.THREATS) + 3, "margin", margins(accounts, thresholds))
    seed = (accounts["label"] != s.CLEAR).to_numpy() | known_fraud(accounts).to_numpy()
    accounts.insert(len(s.THREATS) + 4, "seed", seed & seeds)
    return accounts


def read_ring_neighbours(
    driver: neo4j.Driver,
    database: str,
    members: list[str],
    thresholds: Mapping[str, float],
    policy: GroupingPolicy | None = None,
) -> RingNeighbours:
    """The accounts tied to ``members`` (of detected rings) that a ring's expansion considers, from Neo4j."""
    policy = policy or GroupingPolicy()
    read: dict[str, Any] = {"database_": database, "routing_": neo4j.RoutingControl.READ}
    rows = []
    for i in range(0, len(members), 1_000):
        chunk = members[i : i + 1_000]
        for cypher in (q.IDENTIFIER_NEIGHBOURS, q.MONEY_NEIGHBOURS):
            records, _, _ = driver.execute_query(cypher, members=chunk, max_users=policy.expand_max_users, **read)
            rows += [(r["account_id"], r["member"], r["via"], r["key"]) for r in records]
    ties = pd.DataFrame(rows, columns=TIE_COLUMNS).drop_duplicates(ignore_index=True)
    ids = sorted(set(ties["account_id"]))
    records = []
    for i in range(0, len(ids), 10_000):
        found, _, _ = driver.execute_query(
            q.ACCOUNTS_BY_ID, ids=ids[i : i + 10_000], clear=s.CLEAR, by_score=s.FLAGGED_BY_SCORE, **read
        )
        records += found
    return RingNeighbours(_account_rows(records, thresholds, seeds=False), _sorted_ties(ties))


def _sorted_ties(ties: pd.DataFrame) -> pd.DataFrame:
    return ties.sort_values(TIE_COLUMNS, ignore_index=True)


def _order(ident: SharedIdentifier) -> tuple[str, str]:
    return ident.label, ident.key


def candidates_from_graph(
    graph: RiskGraph,
    plan: pd.DataFrame,
    thresholds: Mapping[str, float],
    policy: GroupingPolicy | None = None,
    unseen_after: int | None = None,
) -> RingCandidates:
    """What :func:`read_candidates` would read after ``plan`` was written to the graph ``graph`` came from.

    Args:
        graph: the scored graph.
        plan: the scoring run's rows for every account, in ``graph``'s account order (``account_id``, one
            column per threat, ``score``, ``label``; see :func:`serving.score.score_rows`).
        thresholds: the run's per-threat thresholds.
        policy, unseen_after: as for :func:`read_candidates`.
    """
    policy = policy or GroupingPolicy()
    ids = graph.ids[s.ACCOUNT.label]
    if len(plan) != len(ids) or (plan[s.ACCOUNT.key].to_numpy() != ids).any():
        raise ValueError("plan rows must be every account of the graph, in the graph's order")
    seed = (plan["label"] != s.CLEAR).to_numpy() | (graph.labels > 0)
    margin = margins(plan, thresholds)
    floors = candidate_floors(thresholds, policy, margin_quantile(margin, policy))
    elevated = np.zeros(len(ids), dtype=bool)
    for t in s.THREATS:
        elevated |= plan[t].to_numpy() >= floors[t]
    chosen = seed | elevated
    accounts = _rows_in_memory(graph, plan, margin, seed, chosen)
    matrices = [(rel.target.label, graph.ids[rel.target.label], incidence(graph, rel).tocsc()) for rel in q.LINK_RELS]
    blocks, block_of = np.unique(
        ip_prefixes(pd.Series(graph.ids[s.IP.label], dtype="string")).to_numpy(dtype=object), return_inverse=True
    )
    to_block = sp.csr_matrix(
        (np.ones(len(block_of)), (np.arange(len(block_of)), block_of)), shape=(len(block_of), len(blocks))
    )
    by_block = (incidence(graph, s.USED_IP) @ to_block).tocsc()
    by_block.data[:] = 1
    matrices.append((q.IP_BLOCK, blocks, by_block))
    shared = []
    for label, keys, inc in matrices:
        users = np.asarray(inc.sum(axis=0)).ravel()
        sub = inc[chosen]
        count = np.asarray(sub.sum(axis=0)).ravel()
        for n in np.flatnonzero((count >= 2) & (count >= policy.min_share * users)):
            members = tuple(sorted(ids[chosen][sub[:, n].nonzero()[0]]))
            shared.append(SharedIdentifier(label, str(keys[n]), members, int(users[n])))
    money = []
    for rel in q.MONEY_RELS:
        ei = graph.data[rel.edge_type].edge_index.numpy()
        keep = chosen[ei[0]] & chosen[ei[1]] & (ei[0] != ei[1])
        money.append(pd.DataFrame({"src": ids[ei[0][keep]], "dst": ids[ei[1][keep]], "type": rel.type, "count": 1}))
    return RingCandidates(
        accounts.sort_values("account_id", ignore_index=True),
        sorted(shared, key=_order),
        pd.concat(money, ignore_index=True),
        int(((graph.labels == 0) & (graph.created_at.astype(np.int64) * 1000 >= (unseen_after or 0))).sum()),
        unseen_after,
    )


def _rows_in_memory(
    graph: RiskGraph, plan: pd.DataFrame, margin: np.ndarray, seed: np.ndarray, chosen: np.ndarray
) -> pd.DataFrame:
    """The candidate rows :data:`graph.queries.rings.CANDIDATE_ACCOUNTS` would read for the accounts ``chosen``."""
    names = np.array([None, *s.THREATS], dtype=object)  # label codes: -1 unlabelled, 0 benign, 1.. threats
    known = np.where(
        graph.labels == 0, s.BENIGN, np.where(graph.labels > 0, names[np.clip(graph.labels, 0, None)], None)
    )
    created = graph.created_at.astype(np.int64) * 1000
    return pd.DataFrame(
        {
            "account_id": graph.ids[s.ACCOUNT.label][chosen],
            "label": plan["label"].to_numpy()[chosen],
            "score": plan["score"].to_numpy()[chosen],
            **{t: plan[t].to_numpy()[chosen] for t in s.THREATS},
            "margin": margin[chosen],
            "seed": seed[chosen],
            "known_label": known[chosen],
            "verdict": None,
            "run_id": None,
            "first_seen": created[chosen],
            "last_seen": created[chosen],
            "created_at": created[chosen],
        }
    )


def _identifier_ties(
    graph: RiskGraph, rel: s.RelSpec, of_member: np.ndarray, max_users: int
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    """Every (user, member, label, key) of the identifiers of ``rel`` that members use and at most ``max_users``
    accounts do (what :data:`graph.queries.rings.IDENTIFIER_NEIGHBOURS` returns for them)."""
    ids = graph.ids[s.ACCOUNT.label]
    inc = incidence(graph, rel).tocsc()
    users = np.diff(inc.indptr)
    used = inc[of_member].tocoo()  # (member row, identifier)
    keep = users[used.col] <= max_users
    members, idents = np.flatnonzero(of_member)[used.row[keep]], used.col[keep]
    counts = users[idents]
    starts = np.repeat(inc.indptr[idents] - np.cumsum(counts) + counts, counts)  # ragged ranges of each column
    accounts = inc.indices[starts + np.arange(int(counts.sum()))]
    keys = np.asarray(graph.ids[rel.target.label], dtype=object)[np.repeat(idents, counts)].astype(str)
    return ids[accounts], ids[np.repeat(members, counts)], rel.target.label, keys.astype(object)


def ring_neighbours_from_graph(
    graph: RiskGraph,
    plan: pd.DataFrame,
    thresholds: Mapping[str, float],
    members: list[str],
    policy: GroupingPolicy | None = None,
) -> RingNeighbours:
    """What :func:`read_ring_neighbours` would read after ``plan`` was written to the graph ``graph`` came from."""
    policy = policy or GroupingPolicy()
    ids = graph.ids[s.ACCOUNT.label]
    position = pd.Series(np.arange(len(ids)), index=ids)
    of_member = np.zeros(len(ids), dtype=bool)
    of_member[position[members].to_numpy()] = True
    found = [_identifier_ties(graph, rel, of_member, policy.expand_max_users) for rel in SHARED_RELS]
    for rel in MONEY_RELS:
        tied = (account_links(graph, policy.expand_max_users, np.flatnonzero(of_member), (rel,)) > 0).tocoo()
        found.append((ids[tied.col], ids[of_member][tied.row], rel.type, np.full(tied.nnz, "", dtype=object)))
    ties = pd.DataFrame(
        {
            "account_id": np.concatenate([f[0] for f in found]).tolist(),
            "member": np.concatenate([f[1] for f in found]).tolist(),
            "via": [f[2] for f in found for _ in range(len(f[0]))],
            "key": np.concatenate([f[3] for f in found]).tolist(),
        }
    )
    ties = ties[ties["account_id"] != ties["member"]].drop_duplicates(ignore_index=True)
    chosen = np.zeros(len(ids), dtype=bool)
    chosen[position[ties["account_id"].unique()].to_numpy()] = True
    rows = _rows_in_memory(graph, plan, margins(plan, thresholds), np.zeros(len(ids), dtype=bool), chosen)
    return RingNeighbours(rows.sort_values("account_id", ignore_index=True), _sorted_ties(ties))
