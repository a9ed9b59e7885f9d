"""Live scoring of a few accounts: their receptive field from Neo4j, the batch job's features and model.

Nothing here is a second copy of the batch pipeline. :func:`graph.receptive_field.read_receptive_field` reads
the part of the graph an account's score depends on, in the export's columns; the batch job's own functions
then run on it: :func:`gnn.export.canonical_frame`, :func:`gnn.build.index_graph`,
:func:`gnn.features.compute_features`, :func:`gnn.build.assemble_risk_graph`, :meth:`RiskModel.decision_function`
(standardised with the scaler saved with the model), :func:`gnn.thresholds.labels_at` and
:func:`serving.reasons.account_reasons`. The few features that compare an account with the *whole* graph
(frequencies, typical amounts, sign-up bursts) take their tallies from a :class:`gnn.features.Population` read
at start-up (:func:`load_population`), and the reference time is the data's latest time, as in batch.

For the same graph and model, the online score equals the batch score (tested to 1e-4 on every account of a
small exchange). The one exception is by design: an identifier used by more than the model's super-node cap
(:data:`graph.supernodes.MODEL_SUPERNODE_CAP`) is not expanded — the training sampler's rule — so the accounts
next to such a hub get a score computed without the hub's other users (bounded cost; the batch job's
full-graph pass sees them all).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import torch

from gnn.build import assemble_risk_graph, index_graph
from gnn.estimator import RiskModel
from gnn.export import canonical_frame
from gnn.features import LABEL_PREFIXES, Population, compute_features, default_reference_time
from gnn.thresholds import labels_at
from graph import schema as s
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS
from graph.receptive_field import read_population, read_receptive_field
from graph.supernodes import FEATURE_SHARED_CAP, MODEL_SUPERNODE_CAP
from serving.reasons import account_reasons


@dataclass(frozen=True)
class GraphContext:
    """The whole graph's tallies and latest time (seconds), read at start-up and on reload."""

    population: Population
    latest_s: int
    read_at: float

    @property
    def age_s(self) -> float:
        return time.time() - self.read_at


def load_population(driver: neo4j.Driver, database: str) -> GraphContext:
    """Read :class:`GraphContext` from Neo4j (whole-graph scans: seconds on a 1M-account graph)."""
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
        tallies = read_population(session, LABEL_PREFIXES)
    latest_ms = tallies.pop("latest_ms")
    return GraphContext(Population(**tallies), latest_ms // 1000, time.time())


@dataclass
class AccountScore:
    """One account scored online.

    Attributes:
        account_id: the account.
        scores: threat → calibrated probability.
        score: the highest of them.
        label: the threat crossed by the widest margin, else ``clear``.
        reasons: evidence for a flagged account (empty otherwise).
    """

    account_id: str
    scores: dict[str, float]
    score: float
    label: str
    reasons: list[str]


@dataclass
class ScoredField:
    """What one call scored, and where its time went (seconds)."""

    accounts: list[AccountScore]
    missing: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    field_accounts: int = 0


class OnlineScorer:
    """Scores accounts from their receptive field with one model (see the module docstring).

    Args:
        model: the loaded model (its scaler, calibrators and thresholds are used as saved).
        version: its version, reported with every score.
        thresholds: threat → threshold for the label (default: the model's own).
        context: the whole graph's tallies.
        batch_labels: account id → its label in the last batch run. Reasons name the *risky* accounts an
            account is tied to; a neighbour's own score needs its own receptive field, so its label is the
            batch run's (as the batch job's reasons use that run's labels). None: neighbours count as clear.
        supernode_cap: identifiers with more accounts are not expanded (default: the model's, as in training).
            A lower cap bounds the receptive field — and the latency — harder, at the price of agreement with
            the batch score for accounts next to such identifiers.

    Torch runs on one thread: a receptive field is small, and concurrent requests each take a core (more
    OpenMP threads than free cores spin against each other, :func:`gnn.runtime.default_threads`).
    """

    def __init__(
        self,
        model: RiskModel,
        version: str,
        context: GraphContext,
        thresholds: dict[str, float] | None = None,
        batch_labels: pd.Series | None = None,
        supernode_cap: int | None = None,
    ) -> None:
        if model.gnn is None:
            raise ValueError("model is not trained")
        torch.set_num_threads(1)
        self.batch_labels = batch_labels
        self.model, self.version, self.context = model, version, context
        self.thresholds = dict(thresholds or model.thresholds)
        self.hops = int(model.config.num_layers)
        self.supernode_cap = int(supernode_cap or model.config.supernode_cap or MODEL_SUPERNODE_CAP)

    def score(self, tx: neo4j.ManagedTransaction | neo4j.Transaction, account_ids: list[str]) -> ScoredField:
        """Score ``account_ids`` in the read transaction ``tx`` (its timeout bounds the Neo4j time)."""
        started = time.perf_counter()
        field_ = read_receptive_field(tx, account_ids, self.hops, self.supernode_cap)
        read_done = time.perf_counter()
        present = set(field_.nodes[s.ACCOUNT.label][s.ACCOUNT.key])
        if not present.intersection(account_ids):
            return ScoredField([], list(account_ids), {"neo4j_read": read_done - started})
        nodes = {
            e.node.label: canonical_frame(field_.nodes[e.node.label], e.columns, (e.node.key,)) for e in NODE_EXPORTS
        }
        rels = {e.rel.type: canonical_frame(field_.rels[e.rel.type], e.columns, e.keys) for e in REL_EXPORTS}
        indexed = index_graph(nodes, rels)
        reference = max(
            self.context.latest_s, default_reference_time(indexed.nodes, {t: r.props for t, r in indexed.rels.items()})
        )
        features = compute_features(indexed.nodes, indexed.rels, reference, FEATURE_SHARED_CAP, self.context.population)
        graph = assemble_risk_graph(indexed, features, reference, "", FEATURE_SHARED_CAP)
        features_done = time.perf_counter()
        positions = graph.account_index(account_ids)
        found = positions >= 0
        probs = self.model.decision_function(graph)
        seeds = positions[found]
        labels = np.full(graph.num_accounts, s.CLEAR, dtype=object)
        if self.batch_labels is not None:
            known = self.batch_labels.reindex(graph.ids[s.ACCOUNT.label]).to_numpy(dtype=object)
            labels = np.where(pd.isna(known), s.CLEAR, known)
        labels[seeds] = labels_at(probs[seeds], self.thresholds)
        flagged = seeds[labels[seeds] != s.CLEAR]
        reasons = account_reasons(graph, labels, flagged) if len(flagged) else {}
        out = [
            AccountScore(
                account_id=str(account_id),
                scores={t: float(probs[p, i]) for i, t in enumerate(s.THREATS)},
                score=float(probs[p].max()),
                label=str(labels[p]),
                reasons=reasons.get(int(p), []),
            )
            for account_id, p in zip(np.asarray(account_ids, dtype=object)[found], seeds)
        ]
        done = time.perf_counter()
        return ScoredField(
            accounts=out,
            missing=[str(a) for a, ok in zip(account_ids, found) if not ok],
            timings={
                "neo4j_read": read_done - started,
                "features": features_done - read_done,
                "model": done - features_done,
            },
            field_accounts=graph.num_accounts,
        )

    def warm_up(self, tx: neo4j.ManagedTransaction | neo4j.Transaction) -> None:
        """Run each query once (an id no account has) so the server plans them before the first request:
        a first plan takes seconds, more than a request's timeout."""
        self.score(tx, ["\x00ringwatch-warm-up"])

    def describe(self) -> dict[str, Any]:
        return {"model_version": self.version, "thresholds": self.thresholds, "hops": self.hops}
