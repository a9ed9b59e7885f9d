"""Live scoring of a few accounts with the batch job's features and model, from the account's neighbourhood.

With the batch run's **feature store** (:mod:`serving.feature_store`, loaded with the model), a score reads
one thing from Neo4j: the account's own relationships (:func:`graph.receptive_field.read_incident`). When
they are the ones the batch run saw (the store's digest of them matches) and every neighbour is in the store,
the account's inputs are the store's and only its last GNN layer runs: the neighbours' embeddings of the layer
before come from the store, so a neighbour that is a hub costs one row, not its thousands of users. The
score is then the batch score (same inputs, same weights; float summation order aside).

An account whose relationships changed since the run (its new events, ``POST /v1/events``), or that the store
does not hold (new since the run), is **recomputed**: its features from its own relationships and what they
read (:func:`graph.receptive_field.read_receptive_field` with ``hops=0``: the users of its identifiers up to
the model's super-node cap, its counterparties' transfers, its referral chain) with the batch job's own
feature code (:func:`gnn.features.compute_features`, :func:`gnn.build.assemble_risk_graph`) on tables built
from the rows as read (:func:`serving.api.recompute.typed_rows` and :func:`~serving.api.recompute.index_typed`,
equal to :func:`gnn.export.canonical_frame` and :func:`gnn.build.index_graph`; identifier types the store holds
entirely take its features), and every layer of its embedding from its neighbours' stored ones; nodes the store
lacks (a new device) are computed from what was read around them. Neighbours keep the batch run's inputs: the
event moves the account's own score at once, and its neighbours' at the next batch run (or when they are
recomputed themselves).

Without a store for the served model (none written yet, or another model: a reload before the next batch
run), the whole receptive field is read and computed as before the store existed: ``num_layers`` hops,
identifiers over the model's super-node cap not expanded (bounded cost; accounts next to such hubs then differ
from the batch score, whose full-graph pass sees every user of a hub).

The few features that compare an account with the *whole* graph (frequencies, typical amounts, sign-up
bursts) take their tallies from a :class:`gnn.features.Population` read at start-up (:func:`load_population`),
and the reference time is the data's latest time, as in batch.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import torch
from torch_geometric.nn import SAGEConv

from gnn.build import REVERSE_PREFIX, assemble_risk_graph
from gnn.estimator import RiskModel
from gnn.features import LABEL_PREFIXES, NodeFeatures, Population, compute_features, default_reference_time
from gnn.graph_data import RiskGraph
from gnn.known_ties import known_fraud_ties
from gnn.source_choice import KNOWN_TIES
from gnn.thresholds import labels_at
from graph import schema as s
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS
from graph.receptive_field import ReceptiveField, read_incident, read_population, read_receptive_field
from graph.supernodes import FEATURE_SHARED_CAP, MODEL_SUPERNODE_CAP
from serving.api.recompute import baseline_row, index_typed, typed_rows
from serving.feature_store import FeatureStore, baseline_used, live_digests
from serving.reasons import account_reasons

EdgeType = tuple[str, str, str]


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
    """What one call scored, and where its time went (seconds).

    Attributes:
        recomputed: accounts whose features were recomputed (changed since the store's run, or not in it).
        field_accounts: accounts whose rows the call read from Neo4j (the scored ones' neighbourhoods).
    """

    accounts: list[AccountScore]
    missing: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    field_accounts: int = 0
    recomputed: list[str] = field(default_factory=list)


class StoredLayers:
    """The GNN's layers for a few nodes, every other node's embeddings taken from the store.

    Uses the model's own modules (input projections, one :class:`SAGEConv` per edge type, layer norms, head),
    in eval mode, exactly as :meth:`gnn.model.RiskSAGE.inference` combines them: per layer, the sum over every
    edge type into the node's type that has an edge in the batch graph (an edge type with no edge into *this*
    node still adds its root term), then residual, ReLU and layer norm; the head reads the input projection and
    the last layer side by side.
    """

    def __init__(self, model: RiskModel, store: FeatureStore) -> None:
        gnn = model.gnn
        if gnn is None or model.scaler is None:
            raise ValueError("model is not trained")
        self.gnn, self.scaler, self.store = gnn.eval(), model.scaler, store
        self.num_layers = int(model.config.num_layers)
        present = set(store.edge_types)
        self.convs: list[dict[EdgeType, Any]] = [
            {(e[0], e[1], e[2]): c for e, c in conv.convs.items() if tuple(e) in present}
            for conv in gnn.convs  # type: ignore[union-attr]
        ]
        self.hidden = int(model.config.hidden)
        # Every convolution a plain mean-aggregating SAGEConv with root weights (RiskSAGE's): the last layer of
        # one account is then written out in account_from_store.
        self.plain_mean = all(
            isinstance(c, SAGEConv) and str(c.aggr) == "mean" and c.root_weight and not c.normalize and not c.project
            for layer in self.convs
            for c in layer.values()
        )

    def encode(self, t: str, x: np.ndarray) -> torch.Tensor:
        """Input projection of raw features ``x`` ``[n, F]`` of node type ``t`` (standardised, clipped)."""
        m, sd = torch.from_numpy(self.scaler.mean[t]), torch.from_numpy(self.scaler.std[t])
        z = ((torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) - m) / sd).clamp_(-10.0, 10.0)
        return torch.relu(self.gnn.encoders[t](z))  # type: ignore[index,operator]

    def stored(self, layer: int, t: str, rows: np.ndarray) -> torch.Tensor:
        """Embeddings after ``layer`` (0: input projection) of the store's ``rows`` of type ``t``."""
        if layer == 0:
            return self.encode(t, self.store.x[t][rows])
        return torch.from_numpy(np.ascontiguousarray(self.store.layers[layer - 1][t][rows], dtype=np.float32))

    def layer(
        self,
        layer: int,
        t: str,
        h_self: torch.Tensor,
        messages: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """Layer ``layer`` (1-based) for ``n`` nodes of type ``t``.

        Args:
            h_self: their embeddings of the layer before, ``[n, hidden]``.
            messages: edge type → ``(h_src [k, hidden], edge_index [2, m])`` (sources index ``h_src``,
                destinations ``h_self``); edge types missing here send no neighbour (root term only).
        """
        convs = self.convs[layer - 1]
        incoming = [(e, c) for e, c in convs.items() if e[2] == t]
        if not incoming:
            return h_self
        empty = (torch.zeros((0, self.hidden)), torch.zeros((2, 0), dtype=torch.long))
        out = []
        for e, c in incoming:
            h_src, edge_index = messages.get(e, empty)
            if self.plain_mean:  # SAGEConv's mean aggregation written out (the module call costs ~0.3 ms)
                out.append(c.lin_l(_mean_into(h_src, edge_index, len(h_self))) + c.lin_r(h_self))
            else:
                out.append(c((h_src, h_self), edge_index, size=(len(h_src), len(h_self))))
        norm: Any = self.gnn.norms[layer - 1][t]  # type: ignore[index]
        return norm(h_self + torch.relu(functools.reduce(torch.add, out)))

    def head(self, h0: torch.Tensor, h_last: torch.Tensor) -> np.ndarray:
        return self.gnn.head(torch.cat([h0, h_last], dim=-1)).numpy()  # type: ignore[operator]

    @torch.no_grad()
    def account_from_store(self, row: int, incident: dict[str, list[list[Any]]], account_id: str) -> np.ndarray | None:
        """Logits ``[1, n_threats]`` of the store's account ``row`` from its neighbours' stored embeddings
        (``incident``: its relationships); None when a neighbour is not in the store.

        The last layer for one node: per edge type, the mean of its neighbours' embeddings through the
        convolution's neighbour weights plus its own through the root weights — :class:`SAGEConv`'s mean
        aggregation written out for a single destination (the PyG call costs ~0.5 ms per edge type, the
        arithmetic microseconds); :meth:`layer` is the module call, for anything else.
        """
        last = self.num_layers
        sources: dict[EdgeType, torch.Tensor] = {}
        for rel in s.DOMAIN_RELS:
            rows_of_type = incident.get(rel.type)
            if not rows_of_type:
                continue
            ends = [
                (
                    (rel.target.label, REVERSE_PREFIX + rel.type, rel.source.label),
                    [r[1] for r in rows_of_type if r[0] == account_id],
                )
            ]
            if rel.target == s.ACCOUNT:
                ends.append((rel.edge_type, [r[0] for r in rows_of_type if r[1] == account_id]))
            for edge_type, keys in ends:
                if not len(keys):
                    continue
                rows = self.store.find(edge_type[0], keys)
                if (rows < 0).any():
                    return None
                sources[edge_type] = self.stored(last - 1, edge_type[0], rows)
        me = np.array([row])
        h0 = self.stored(0, s.ACCOUNT.label, me)
        h_before = h0 if last == 1 else self.stored(last - 1, s.ACCOUNT.label, me)
        if not self.plain_mean:
            k = {e: len(h) for e, h in sources.items()}
            messages = {
                e: (h, torch.stack([torch.arange(k[e]), torch.zeros(k[e], dtype=torch.long)]))
                for e, h in sources.items()
            }
            return self.head(h0, self.layer(last, s.ACCOUNT.label, h_before, messages))
        incoming = [(e, c) for e, c in self.convs[last - 1].items() if e[2] == s.ACCOUNT.label]
        if not incoming:
            return self.head(h0, h_before)
        total = torch.zeros_like(h_before)
        for e, c in incoming:
            h = sources.get(e)
            mean = h.mean(dim=0, keepdim=True) if h is not None else torch.zeros_like(h_before)
            total = total + (c.lin_l(mean) + c.lin_r(h_before))
        norm: Any = self.gnn.norms[last - 1][s.ACCOUNT.label]  # type: ignore[index]
        return self.head(h0, norm(h_before + torch.relu(total)))

    @torch.no_grad()
    def graph_with_store(
        self, graph: RiskGraph, free_accounts: set[str], targets: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits ``[len(targets), n_threats]`` of the small ``graph``'s accounts at positions ``targets``, every
        node the store holds — except ``free_accounts`` — pinned to its stored inputs and embeddings; the graph's
        features are replaced by the store's where it holds the node (returned as ``x``, for the baseline).

        A layer runs only for the nodes whose output is used: an inner layer for the nodes the store does not
        pin, the last for ``targets`` (each node's layer reads only its own incoming edges, so the rows computed
        are those of the whole-graph call)."""
        labels = [n.label for n in s.DOMAIN_NODES]
        rows, x = {}, {}
        for t in labels:
            rows[t] = self.store.find(t, graph.ids[t])
            if t == s.ACCOUNT.label and free_accounts:
                rows[t][np.isin(graph.ids[t], list(free_accounts))] = -1
            x[t] = graph.data[t].x.numpy().copy()
            kept = rows[t] >= 0
            if kept.any():
                x[t][kept] = self.store.x[t][rows[t][kept]]
        h = {t: self.encode(t, x[t]) for t in labels}
        h0 = h[s.ACCOUNT.label]
        edges = {e: graph.data[e].edge_index for e in graph.data.edge_types}
        targets = np.asarray(targets, dtype=np.int64)
        for layer in range(1, self.num_layers):
            new = {}
            for t in labels:
                kept = rows[t] >= 0
                new[t] = torch.zeros_like(h[t])
                if kept.any():
                    new[t][torch.from_numpy(kept)] = self.stored(layer, t, rows[t][kept])
                if not kept.all():
                    free = np.flatnonzero(~kept)
                    new[t][torch.from_numpy(free)] = self._layer_rows(layer, t, h, edges, free)
            h = new
        last = self._layer_rows(self.num_layers, s.ACCOUNT.label, h, edges, targets)
        return self.head(h0[torch.from_numpy(targets)], last), x

    def _layer_rows(
        self,
        layer: int,
        t: str,
        h: dict[str, torch.Tensor],
        edges: dict[Any, torch.Tensor],
        positions: np.ndarray,
    ) -> torch.Tensor:
        """:meth:`layer` for the nodes of type ``t`` at ``positions`` only (their incoming edges, renumbered)."""
        renumber = torch.full((len(h[t]),), -1, dtype=torch.long)
        renumber[torch.from_numpy(positions)] = torch.arange(len(positions))
        messages = {}
        for e, ei in edges.items():
            if e[2] != t or not ei.numel():
                continue
            into = renumber[ei[1]]
            keep = into >= 0
            messages[e] = (h[e[0]], torch.stack([ei[0][keep], into[keep]]))
        return self.layer(layer, t, h[t][torch.from_numpy(positions)], messages)


def _mean_into(h_src: torch.Tensor, edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """Per destination ``0 … n-1``, the mean of its sources' rows of ``h_src`` (0 where it has none), as
    :class:`SAGEConv`'s mean aggregation computes it."""
    total = torch.zeros((n, h_src.shape[1]), dtype=h_src.dtype)
    if edge_index.numel():
        total.index_add_(0, edge_index[1], h_src[edge_index[0]])
        total = total / torch.bincount(edge_index[1], minlength=n).clamp_(min=1).unsqueeze(1).to(h_src.dtype)
    return total


class OnlineScorer:
    """Scores accounts from their neighbourhood with one model (see the module docstring).

    Args:
        model: the loaded model (its scaler, calibrators and thresholds are used as saved).
        version: its version, reported with every score.
        context: the whole graph's tallies.
        thresholds: threat → threshold for the label (default: the model's own).
        batch_labels: account id → its label in the last batch run. Reasons name the *risky* accounts an
            account is tied to; a neighbour's own score needs its own receptive field, so its label is the
            batch run's (as the batch job's reasons use that run's labels). None: neighbours count as clear.
        supernode_cap: identifiers with more accounts are not expanded (default: the model's, as in training).
        store: the batch run's feature store for this model (None: the whole receptive field is computed).
        batch_reasons: account id → the batch run's reasons, answered for a flagged account the store scores
            (same inputs, same reasons); None: computed.

    Torch runs on one thread: a neighbourhood is small, and concurrent requests each take a core (more
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
        store: FeatureStore | None = None,
        batch_reasons: pd.Series | None = None,
    ) -> None:
        if model.gnn is None:
            raise ValueError("model is not trained")
        torch.set_num_threads(1)
        self.batch_labels, self.batch_reasons = batch_labels, batch_reasons
        self.model, self.version, self.context = model, version, context
        self.thresholds = dict(thresholds or model.thresholds)
        self.hops = int(model.config.num_layers)
        self.supernode_cap = int(supernode_cap or model.config.supernode_cap or MODEL_SUPERNODE_CAP)
        self.store = store
        self.layers = StoredLayers(model, store) if store is not None else None
        self.with_baseline = baseline_used(model)

    # -- the public surface ------------------------------------------------------------------------

    @torch.no_grad()
    def score(
        self, tx: neo4j.ManagedTransaction | neo4j.Transaction, account_ids: list[str], recompute: bool = False
    ) -> ScoredField:
        """Score ``account_ids`` in the read transaction ``tx`` (its timeout bounds the Neo4j time).

        Args:
            recompute: recompute every account as if it had changed since the store's run (an event was just
                written for it; tests, benchmarks): its relationships' digest is not read.
        """
        if self.store is None or self.layers is None:
            return self._score_field(tx, account_ids, self.hops, set())
        if recompute:
            changed_now = [str(a) for a in account_ids]
            field_ = self._score_field(tx, changed_now, 0, set(changed_now))
            field_.recomputed = [a.account_id for a in field_.accounts]
            return field_
        started = time.perf_counter()
        incident = read_incident(tx, account_ids)
        read_s = time.perf_counter() - started
        rows = self.store.find(s.ACCOUNT.label, account_ids)
        live = live_digests(incident, [str(a) for a in account_ids])
        logits: dict[str, np.ndarray] = {}
        changed: list[str] = []
        for account_id, row, digest in zip(account_ids, rows, live):
            if recompute or row < 0 or digest != int(self.store.digest[row]):
                changed.append(str(account_id))
                continue
            out = self.layers.account_from_store(int(row), incident, str(account_id))
            if out is None:
                changed.append(str(account_id))
            else:
                logits[str(account_id)] = out[0]
        stored = [str(a) for a in account_ids if str(a) in logits]
        scores = self._probabilities(stored, rows, account_ids, logits)
        out_scores = {a: p for a, p in zip(stored, scores)}
        labels = dict(zip(stored, labels_at(scores, self.thresholds))) if stored else {}
        reasons: dict[str, list[str]] = {}
        for a in stored:
            if labels[a] == s.CLEAR:
                reasons[a] = []
            elif self._batch_agrees(a, labels[a]):
                reasons[a] = list(self.batch_reasons[a] or [])  # type: ignore[index]
            else:
                changed.append(a)  # flagged now but not by the batch run: explain it from its field
        model_s = time.perf_counter() - started - read_s
        timings = {"neo4j_read": read_s, "features": 0.0, "model": model_s}
        field_accounts = len(stored)
        recomputed: dict[str, AccountScore] = {}
        missing: list[str] = []
        if changed:
            slow = self._score_field(tx, changed, 0, set(changed))
            for k, v in slow.timings.items():
                timings[k] = timings.get(k, 0.0) + v
            recomputed = {a.account_id: a for a in slow.accounts}
            missing = slow.missing
            field_accounts += slow.field_accounts
        accounts = []
        for a in (str(x) for x in account_ids):
            if a in recomputed:
                accounts.append(recomputed[a])
            elif a in out_scores and a not in changed:
                p = out_scores[a]
                accounts.append(
                    AccountScore(
                        a, {t: float(p[i]) for i, t in enumerate(s.THREATS)}, float(p.max()), str(labels[a]), reasons[a]
                    )
                )
        return ScoredField(accounts, missing, timings, field_accounts, [a for a in changed if a in recomputed])

    def warm_up(self, tx: neo4j.ManagedTransaction | neo4j.Transaction) -> None:
        """Run each query once (an id no account has) so the server plans them before the first request:
        a first plan takes seconds, more than a request's timeout."""
        self.score(tx, ["\x00ringwatch-warm-up"])

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "thresholds": self.thresholds,
            "hops": self.hops,
            "feature_store": self.store.run_id if self.store is not None else None,
        }

    # -- internals ---------------------------------------------------------------------------------

    def _batch_agrees(self, account_id: str, label: str) -> bool:
        if self.batch_reasons is None or self.batch_labels is None or account_id not in self.batch_reasons.index:
            return False
        return bool(self.batch_labels.get(account_id) == label)

    def _probabilities(
        self, stored: list[str], rows: np.ndarray, account_ids: list[str], logits: dict[str, np.ndarray]
    ) -> np.ndarray:
        if not stored:
            return np.zeros((0, len(s.THREATS)))
        raw = {"gnn": np.stack([logits[a] for a in stored])}
        if self.store is not None:
            where = dict(zip((str(a) for a in account_ids), rows))
            at = [int(where[a]) for a in stored]
            if self.with_baseline and self.store.baseline is not None:
                raw["baseline"] = self._baseline_raw(np.asarray(self.store.baseline[at], dtype=np.float32))
            raw[KNOWN_TIES] = np.asarray(self.store.known_ties[at], dtype=np.float64)
        return self.model.calibrate(raw)

    def _baseline_raw(self, features: np.ndarray) -> np.ndarray:
        """The baseline's margins: its boosters in their fitted order, as
        :meth:`gnn.baseline.GraphBoostBaseline.decision_function`, on one thread — a few rows, and LightGBM's
        default threads cost ~2 ms a call to set up (0.05 ms on one), more than the trees."""
        boosters = self.model.baseline.boosters.values()  # type: ignore[union-attr]
        return np.column_stack([b.predict(features, raw_score=True, num_threads=1) for b in boosters])

    def field_graph(self, field_: ReceptiveField) -> RiskGraph:
        """The small graph of a receptive field, its features computed by the batch job's code (the graph's own
        rows; the graph-wide tallies from :attr:`context`): a complete account's features are its batch features
        when the field holds everything they read (tested on every account of a small exchange)."""
        nodes = {
            e.node.label: typed_rows(field_.node_rows[e.node.label], e.columns, (e.node.key,)) for e in NODE_EXPORTS
        }
        rels = {e.rel.type: typed_rows(field_.rel_rows[e.rel.type], e.columns, e.keys) for e in REL_EXPORTS}
        indexed = index_typed(nodes, rels)
        reference = max(
            self.context.latest_s, default_reference_time(indexed.nodes, {t: r.props for t, r in indexed.rels.items()})
        )
        # An identifier type whose every node is in the store takes the store's features (the recompute pins them
        # to it anyway): only the types with new nodes (a login's new device) are computed.
        stored: dict[str, NodeFeatures] = {}
        if self.store is not None:
            for spec in s.IDENTIFIER_NODES:
                rows = self.store.find(spec.label, indexed.nodes[spec.label][spec.key].tolist())
                if not (rows < 0).any():
                    x = np.asarray(self.store.x[spec.label][rows], dtype=np.float32)
                    stored[spec.label] = NodeFeatures(list(self.model.feature_names[spec.label]), x)
        wanted = [spec.label for spec in s.IDENTIFIER_NODES if spec.label not in stored]
        features = compute_features(
            indexed.nodes, indexed.rels, reference, FEATURE_SHARED_CAP, self.context.population, identifiers=wanted
        )
        return assemble_risk_graph(indexed, {**features, **stored}, reference, "", FEATURE_SHARED_CAP)

    @torch.no_grad()
    def _score_field(
        self, tx: neo4j.ManagedTransaction | neo4j.Transaction, account_ids: list[str], hops: int, free: set[str]
    ) -> ScoredField:
        """Score ``account_ids`` from their receptive field of ``hops`` hops, computed here; with a store,
        every node but the ``free`` accounts and the nodes it lacks keeps its stored inputs and embeddings."""
        started = time.perf_counter()
        field_ = read_receptive_field(tx, account_ids, hops, self.supernode_cap)
        read_done = time.perf_counter()
        present = {row[0] for row in field_.node_rows[s.ACCOUNT.label]}  # the key: the export's first column
        if not present.intersection(account_ids):
            return ScoredField([], list(account_ids), {"neo4j_read": read_done - started})
        graph = self.field_graph(field_)
        features_done = time.perf_counter()
        positions = graph.account_index(account_ids)
        found = positions >= 0
        seeds = positions[found]
        if self.layers is None:
            probs = self.model.decision_function(graph)
        else:
            # Only the seeds' scores are meant: their rows alone are calibrated, and the baseline's input is
            # built for their rows only (the batch function builds every account's of the field).
            logits, x = self.layers.graph_with_store(graph, free, seeds)
            raw = {"gnn": logits}
            if self.with_baseline:
                for t, values in x.items():
                    graph.data[t].x = torch.from_numpy(values)
                cap = self.model.config.supernode_cap
                raw["baseline"] = self._baseline_raw(np.stack([baseline_row(graph, int(p), cap) for p in seeds]))
            raw[KNOWN_TIES] = known_fraud_ties(graph, rows=seeds)  # the field holds every account a seed is tied to
            probs = np.zeros((graph.num_accounts, len(s.THREATS)))
            if len(seeds):
                probs[seeds] = self.model.calibrate(raw)
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
