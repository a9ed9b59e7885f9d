"""Reasons an investigator can check in the graph: what ties a flagged account to other risky accounts.

For every flagged account, the identifiers it shares with *risky* accounts — flagged by this run, or holding
a known fraud label (or a confirmed verdict) — ranked by how many risky accounts share each one, then by how
few accounts use it at all (a device shared by 3 accounts, all risky, says more than an IP shared by 90).
Money links count too: transfers with risky counterparties and referrals from or to risky accounts.

The evidence cap (:data:`graph.supernodes.EVIDENCE_CAP`): an identifier used by more accounts — a carrier NAT,
public Wi-Fi, a popular promo code — ties everyone and explains nothing, so it is never a reason. Each reason
names the node by label and key, so ``MATCH (n:Device {device_id: …})`` finds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gnn.graph_data import RiskGraph
from gnn.known_ties import SHARED_RELS, incidence
from graph import schema as s
from graph.supernodes import EVIDENCE_CAP

#: Reasons kept per account.
MAX_REASONS = 5


@dataclass(frozen=True, order=True)
class Reason:
    """One reason, ordered so that ``sorted`` puts the strongest first."""

    rank_key: tuple[int, int, int]
    text: str


def shared_with(graph: RiskGraph, position: int, cap: int = EVIDENCE_CAP) -> pd.DataFrame:
    """The accounts that share an identifier with the account at ``position`` — through identifiers used by at
    most ``cap`` accounts, the rule reasons follow — one row per (identifier, other account).

    Returns:
        Columns ``via`` (``Label:key``), ``users`` (accounts using it), ``account_id`` and ``position`` of the
        other account.
    """
    rows: list[tuple[str, int, str, int]] = []
    for rel in SHARED_RELS:
        inc = incidence(graph, rel)
        users = np.asarray(inc.sum(axis=0)).ravel()
        by_identifier = inc.tocsc()
        keys = graph.ids[rel.target.label]
        for n in inc[position].indices:
            if users[n] > cap:
                continue
            others = by_identifier.indices[by_identifier.indptr[n] : by_identifier.indptr[n + 1]]
            rows += [
                (f"{rel.target.label}:{keys[n]}", int(users[n]), str(graph.ids[s.ACCOUNT.label][o]), int(o))
                for o in others
                if o != position
            ]
    return pd.DataFrame(rows, columns=["via", "users", "account_id", "position"])


def risky_accounts(graph: RiskGraph, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(risky, known)`` masks: flagged now (``labels`` != clear) or known fraud; known fraud alone."""
    known = graph.labels > 0  # codes 1..3 are the threats (gnn.graph_data.LABEL_CODES)
    return (labels != s.CLEAR) | known, known


def account_reasons(
    graph: RiskGraph,
    labels: np.ndarray,
    explain: np.ndarray,
    supernode_cap: int = EVIDENCE_CAP,
    limit: int = MAX_REASONS,
) -> dict[int, list[str]]:
    """Reasons for the accounts at positions ``explain``.

    Args:
        graph: the scored graph.
        labels: risk label per account (``clear`` or a threat), ``[N_account]``.
        explain: positions of the accounts to explain (usually the flagged ones).
        supernode_cap: identifiers with more users are never reasons (:data:`graph.supernodes.EVIDENCE_CAP`).
        limit: reasons kept per account, strongest first.

    Returns:
        position → reason texts, strongest first (accounts with none map to an empty list).
    """
    risky, known = risky_accounts(graph, labels)
    explain = np.asarray(explain, dtype=np.int64)
    found: dict[int, list[Reason]] = {int(i): [] for i in explain}
    for order, rel in enumerate(SHARED_RELS):
        inc = incidence(graph, rel)
        users = np.asarray(inc.sum(axis=0)).ravel()
        risky_users = inc.T @ risky.astype(np.float32)
        known_users = inc.T @ known.astype(np.float32)
        rows = inc[explain]
        keys = graph.ids[rel.target.label]
        for r, (lo, hi) in enumerate(zip(rows.indptr[:-1], rows.indptr[1:])):
            a = int(explain[r])
            for n in rows.indices[lo:hi]:
                if users[n] > supernode_cap:
                    continue
                others = int(risky_users[n]) - int(risky[a])
                if others < 1:
                    continue
                known_others = int(known_users[n]) - int(known[a])
                text = (
                    f"{rel.target.label} {keys[n]} shared with {others} risky account{'s' * (others > 1)}"
                    f" ({known_others} known fraud) among {int(users[n])} users"
                )
                found[a].append(Reason((-others, int(users[n]), order), text))
    _money_reasons(graph, risky, known, explain, found)
    return {a: [r.text for r in sorted(rs)[:limit]] for a, rs in found.items()}


def _money_reasons(
    graph: RiskGraph, risky: np.ndarray, known: np.ndarray, explain: np.ndarray, found: dict[int, list[Reason]]
) -> None:
    ids = graph.ids[s.ACCOUNT.label]
    explain_set = np.zeros(graph.num_accounts, dtype=bool)
    explain_set[explain] = True
    order = len(SHARED_RELS)
    for rel, verb in ((s.TRANSFERRED_TO, "transfers with"), (s.REFERRED, "referral link with")):
        ei = graph.data[rel.edge_type].edge_index.numpy()
        src, dst = np.concatenate([ei[0], ei[1]]), np.concatenate([ei[1], ei[0]])
        keep = explain_set[src] & risky[dst] & (src != dst)
        pairs = np.unique(np.stack([src[keep], dst[keep]]), axis=1)
        for a in np.unique(pairs[0]):
            peers = pairs[1][pairs[0] == a]
            k, n_known = len(peers), int(known[peers].sum())
            sample = ", ".join(str(ids[p]) for p in peers[:3]) + (", …" if k > 3 else "")
            text = f"{verb} {k} risky account{'s' * (k > 1)} ({n_known} known fraud): {sample}"
            found[int(a)].append(Reason((-k, 0, order), text))
        order += 1
