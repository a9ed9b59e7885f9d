"""The honest baseline: gradient-boosted trees on each account's own features plus the mean features of
its 1- and 2-hop neighbours (GADBench's "XGBGraph" recipe, here with LightGBM).

On the account–identifier graph, an account's 1-hop neighbours are its identifiers (devices, IPs, cards,
…) and its direct counterparties (transfers, referrals); its 2-hop accounts are those sharing an
identifier with it. Identifiers used by more than ``supernode_cap`` accounts (carrier NAT, public Wi-Fi,
exchange hot wallets) are left out of the 2-hop mean: everyone shares them, so they say nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from torch_geometric.data import HeteroData

from gnn.graph_data import RiskGraph
from graph.schema import ACCOUNT, THREATS
from graph.supernodes import MODEL_SUPERNODE_CAP

_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 2,
}


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    deg = np.asarray(m.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1.0)) @ m


def neighbourhood_features(
    graph: RiskGraph, supernode_cap: int | None = MODEL_SUPERNODE_CAP
) -> tuple[np.ndarray, list[str]]:
    """``[N_account, F]`` own features, 1-hop means per neighbour type, 2-hop account means."""
    return graph_neighbourhood_features(graph.data, ACCOUNT.label, supernode_cap, graph.feature_names)


def graph_neighbourhood_features(
    data: HeteroData,
    target_type: str,
    supernode_cap: int | None = MODEL_SUPERNODE_CAP,
    feature_names: dict[str, list[str]] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """:func:`neighbourhood_features` of any graph's ``target_type`` nodes: own features, the 1-hop mean over
    each edge type leaving them (``rev_*`` edge types skipped: their forward type is counted), and the mean
    over the target nodes reached in two hops through another node type (or one hop along a target→target
    edge, either way).

    Shapes:
        - **output:** ``[N_target, F]`` float32, and the ``F`` column names.
    """
    n = data[target_type].num_nodes
    names_of = feature_names or {t: [f"x{i}" for i in range(data[t].x.shape[1])] for t in data.node_types}
    x_target = data[target_type].x.numpy()
    blocks, names = [x_target], [f"own.{f}" for f in names_of[target_type]]
    # Who shares what with whom, as one product: the incidences of every identifier type side by side, and a
    # column per target→target edge holding its two ends (its product gives the pair both ways). Adding n × n
    # matrices one edge type at a time merged the growing sum again for every type: half the time at 100k
    # accounts. Only the pattern is kept (values set to 1 below).
    incidences: list[sp.csr_matrix] = []
    for src, rel, dst in data.edge_types:
        if src != target_type or rel.startswith("rev_"):
            continue
        ei = data[(src, rel, dst)].edge_index.numpy()
        n_dst = data[dst].num_nodes
        inc = sp.csr_matrix((np.ones(ei.shape[1], dtype=np.float32), (ei[0], ei[1])), shape=(n, n_dst))
        inc.data[:] = 1.0  # several edges per pair (assets) count once
        x_dst = data[dst].x.numpy()
        blocks.append(_row_normalise(inc) @ x_dst)
        names += [f"hop1.{rel}.{f}" for f in names_of[dst]]
        if dst != target_type:
            users = np.asarray(inc.sum(axis=0)).ravel()
            keep = users <= supernode_cap if supernode_cap else np.ones_like(users, dtype=bool)
            incidences.append(inc.tocsc()[:, np.flatnonzero(keep)].tocsr())
        else:
            m = ei.shape[1]
            ends = (np.concatenate([ei[0], ei[1]]), np.concatenate([np.arange(m), np.arange(m)]))
            incidences.append(sp.csr_matrix((np.ones(2 * m, dtype=np.float32), ends), shape=(n, m)))
    kept = sp.hstack(incidences, format="csr") if incidences else sp.csr_matrix((n, 0), dtype=np.float32)
    shared = (kept @ kept.T).tocsr()
    shared.setdiag(0)
    shared.eliminate_zeros()
    shared.data[:] = 1.0
    blocks.append(_row_normalise(shared) @ x_target)
    names += [f"hop2.{f}" for f in names_of[target_type]]
    blocks.append(np.asarray(shared.sum(axis=1)))
    names.append("hop2.accounts")
    return np.hstack([np.asarray(b, dtype=np.float32) for b in blocks]), names


@dataclass
class GraphBoostBaseline:
    """One LightGBM classifier per target (the exchange's threats, or ``names`` of :meth:`fit`) on
    :func:`neighbourhood_features` (or any feature table: the no-graph baseline gives it own features only)."""

    num_rounds: int = 300
    supernode_cap: int | None = MODEL_SUPERNODE_CAP
    seed: int = 0
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)

    def fit(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        train: np.ndarray,
        weights: np.ndarray,
        val: np.ndarray,
        names: Sequence[str] = THREATS,
    ) -> GraphBoostBaseline:
        """Train each target (column ``i`` of ``targets`` is ``names[i]``) on ``train`` rows (with ``weights``),
        early-stopped on ``val`` rows."""
        self.boosters = {}
        for i, threat in enumerate(names):
            y = targets[:, i]
            pos = max(float((y[train] * weights).sum()), 1.0)
            neg = float(((1 - y[train]) * weights).sum())
            params = {**_PARAMS, "seed": self.seed, "scale_pos_weight": min(neg / pos, 100.0)}
            dtrain = lgb.Dataset(features[train], y[train], weight=weights, free_raw_data=True)
            dval = lgb.Dataset(features[val], y[val], reference=dtrain)
            self.boosters[threat] = lgb.train(
                params,
                dtrain,
                num_boost_round=self.num_rounds,
                valid_sets=[dval],
                callbacks=[lgb.early_stopping(30, verbose=False)],
            )
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Raw margins ``[N, n_targets]`` (higher is riskier), in the order the targets were fitted."""
        return np.column_stack([b.predict(features, raw_score=True) for b in self.boosters.values()])

    def state(self) -> dict[str, Any]:
        return {t: b.model_to_string() for t, b in self.boosters.items()}

    @classmethod
    def from_state(cls, state: dict[str, str], supernode_cap: int | None) -> GraphBoostBaseline:
        return cls(supernode_cap=supernode_cap, boosters={t: lgb.Booster(model_str=s) for t, s in state.items()})
