"""``RiskModel``: the scikit-learn-style surface over the GNN and its baseline, for notebooks and serving.

``fit`` trains the GraphSAGE model and the graph-boosting baseline on the same time split, calibrates each
on the validation accounts (Platt scaling) and, **per threat**, ships whichever of GNN, baseline or their
average scores best on validation (AUPRC). The calibrated score is then corrected for partial labels
(:mod:`gnn.thresholds`: the probability of fraud, not of being labelled fraud), and the thresholds come
from the model's :class:`~gnn.thresholds.ThresholdPolicy` (by default a target account false-positive rate
estimated on the validation accounts). ``decision_function`` returns the corrected probabilities per threat;
``predict`` the label whose threshold an account crosses by the widest margin, else ``clear``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gnn.baseline import GraphBoostBaseline, neighbourhood_features
from gnn.graph_data import LABEL_CODES, UNLABELLED, RiskGraph
from gnn.known_ties import known_fraud_ties
from gnn.metrics import PlattCalibrator
from gnn.model import RiskSAGE
from gnn.normalize import FeatureScaler
from gnn.source_choice import KNOWN_TIES, SOURCES, SourceChoice, train_sources
from gnn.split import TimeSplit
from gnn.thresholds import PUCalibrator, ThresholdPolicy, benign_weights, budget_flags, fpr_level, labels_at
from gnn.train import EpochResult, TrainConfig, TrainingData, fit_gnn, predict_logits, prepare_training, standardised
from graph.errors import ModelError
from graph.schema import ACCOUNT, BENIGN, CLEAR, THREATS

__all__ = ["NEVER_FLAG", "SOURCES", "RiskModel"]

#: The threshold of a threat the model has no labelled example of: above every calibrated score.
NEVER_FLAG = 1.01


class RiskModel(SourceChoice):
    """Scores accounts for collusion, promotion abuse and bot farms: the exchange's user of the graph-agnostic
    pieces (:func:`gnn.train.train_gnn`, :func:`gnn.source_choice.train_sources`, :class:`SourceChoice`) that
    :class:`gnn.graph_model.GraphRiskModel` applies to any graph.

    Args:
        config: GNN hyper-parameters.
        use_baseline: also train the baseline (needed for the per-threat choice).
    """

    def __init__(
        self, config: TrainConfig | None = None, use_baseline: bool = True, policy: ThresholdPolicy | None = None
    ) -> None:
        super().__init__(THREATS)
        self.config = config or TrainConfig()
        self.use_baseline = use_baseline
        self.policy = policy or ThresholdPolicy()
        self.gnn: torch.nn.Module | None = None
        self.scaler: FeatureScaler | None = None
        self.baseline: GraphBoostBaseline | None = None
        self.thresholds: dict[str, float] = {}
        self.split: TimeSplit | None = None
        self.feature_names: dict[str, list[str]] = {}
        self.metadata: tuple[list[str], list[tuple[str, str, str]]] | None = None
        self.history: list[dict[str, Any]] = []
        self.trained_on: str = ""
        #: Raw scores (:meth:`raw_scores`) of every account of the graph :meth:`finish` ran on, computed there for
        #: calibration; ``calibrate(fitted_raw)`` is :meth:`decision_function` of that graph without a second
        #: full-graph pass. None for a loaded model.
        self.fitted_raw: dict[str, np.ndarray] | None = None

    # -- training -----------------------------------------------------------------------------------

    def fit(self, graph: RiskGraph, split: TimeSplit | None = None, on_epoch=None) -> RiskModel:
        """Train on ``graph``'s known labels (partial truth) with a time split (default 70/15/15)."""
        split = split or TimeSplit.by_quantiles(graph)
        result, td = fit_gnn(graph, split, self.config, on_epoch)
        return self.finish(graph, split, result.state_dict, td, result.history)

    def finish(
        self,
        graph: RiskGraph,
        split: TimeSplit,
        state_dict: dict[str, torch.Tensor],
        td: TrainingData | None = None,
        history: list[EpochResult] | None = None,
    ) -> RiskModel:
        """Load trained GNN weights, train the baseline, calibrate and choose per threat on validation."""
        td = td or prepare_training(graph, split)
        self.split, self.scaler = split, td.scaler
        self.feature_names = {k: list(v) for k, v in graph.feature_names.items()}
        self.metadata = (list(td.data.node_types), [tuple(e) for e in td.data.edge_types])
        features = neighbourhood_features(graph, self.config.supernode_cap)[0] if self.use_baseline else None
        sources = train_sources(td, features, self.config, state_dict)
        sources.raw[KNOWN_TIES] = known_fraud_ties(graph)
        self.gnn, self.baseline = sources.gnn, sources.baseline
        self.history = [asdict(h) for h in history or []]
        self.trained_on = graph.content_hash
        self._calibrate_and_choose(sources.raw, td.targets.numpy(), td.val, td.train_labelled)
        self._set_thresholds(sources.raw, graph.labels, td.val)
        self.fitted_raw = sources.raw
        return self

    def _set_thresholds(self, raw: dict[str, np.ndarray], labels: np.ndarray, val: np.ndarray) -> None:
        """Thresholds of the model's policy on the validation accounts (see :mod:`gnn.thresholds`)."""
        self.thresholds = self.policy_thresholds(
            self.calibrate({k: v[val] for k, v in raw.items()}),
            labels[val],
            self.policy if self.policy.kind == "fpr" else ThresholdPolicy(),
        )
        for threat in THREATS:
            self.validation[threat]["threshold"] = self.thresholds[threat]

    def policy_thresholds(self, probs: np.ndarray, labels: np.ndarray, policy: ThresholdPolicy) -> dict[str, float]:
        """Per-threat thresholds of an ``fpr`` policy on accounts with corrected probabilities ``probs``.

        Args:
            probs: ``[n, n_threats]`` corrected probabilities of the accounts the rate is estimated on.
            labels: their known-label codes (:data:`gnn.graph_data.LABEL_CODES`, -1 unlabelled).
            policy: an ``fpr`` policy.

        A threat the model has no labelled example of never flags.
        """
        usable = [self.validation.get(t, {}).get("labelled_positives", 1) > 0 for t in THREATS]
        probs = np.where(usable, probs, 0.0)
        known_benign = labels == LABEL_CODES[BENIGN]
        weight = benign_weights(probs, known_benign, labels == UNLABELLED)
        share = float(policy.fpr_target or 0.0) / max(sum(usable), 1)
        return {
            t: (fpr_level(probs[:, i], weight, known_benign, share) if ok else NEVER_FLAG)
            for i, (t, ok) in enumerate(zip(THREATS, usable))
        }

    # -- scoring ------------------------------------------------------------------------------------

    def check_compatible(self, graph: RiskGraph) -> None:
        """Raise ModelError unless the model is trained and ``graph`` has the model's features."""
        if self.gnn is None or self.scaler is None:
            raise ModelError("the model is not trained: call fit() or RiskModel.load()")
        if graph.feature_names != self.feature_names:
            raise ModelError("the graph's features differ from the model's (different ringwatch version?)")

    def raw_scores(self, graph: RiskGraph) -> dict[str, np.ndarray]:
        """What calibration reads, ``[N_account, n_threats]`` each: uncalibrated scores per source (GNN logits,
        baseline margins) and the accounts' known-fraud ties (:data:`gnn.source_choice.KNOWN_TIES`)."""
        self.check_compatible(graph)
        data = standardised(graph, self.scaler)  # type: ignore[arg-type]
        raw = {"gnn": predict_logits(self.gnn, data, self.config.resolved_device())}  # type: ignore[arg-type]
        baseline = self.baseline_raw(graph)
        if baseline is not None:
            raw["baseline"] = baseline
        raw[KNOWN_TIES] = known_fraud_ties(graph)
        return raw

    def decision_function(self, graph: RiskGraph) -> np.ndarray:
        """Calibrated score per account and threat, ``[N_account, n_threats]``, in ``[0, 1]``."""
        return self.calibrate(self.raw_scores(graph))

    def baseline_raw(self, graph: RiskGraph) -> np.ndarray | None:
        """The baseline's margins for every account (None without a baseline)."""
        if self.baseline is None:
            return None
        features, _ = neighbourhood_features(graph, self.config.supernode_cap)
        return self.baseline.decision_function(features)

    def predict(self, graph: RiskGraph, scores: np.ndarray | None = None) -> np.ndarray:
        """Per account, the threat whose threshold it crosses by the widest margin, else ``clear``."""
        scores = self.decision_function(graph) if scores is None else scores
        return labels_at(scores, self.thresholds)

    def decide(
        self, graph: RiskGraph, scores: np.ndarray, policy: ThresholdPolicy | None = None
    ) -> tuple[np.ndarray, dict[str, float], ThresholdPolicy]:
        """Labels and thresholds for ``graph``'s accounts under ``policy`` (None: the model's own thresholds).

        An ``fpr`` policy re-estimates the level on this graph's accounts the model did not train on (created
        after its training period); a ``budget`` flags exactly ``min(budget, accounts)`` accounts, the
        highest probabilities first (see :mod:`gnn.thresholds`).

        Returns:
            ``(labels [N_account], thresholds per threat, the policy applied)``.
        """
        if policy is None:
            return self.predict(graph, scores), dict(self.thresholds), self.policy
        if policy.kind == "budget":
            top = scores.max(axis=1)
            flags = budget_flags(top, int(policy.budget or 0))
            labels = np.where(flags, np.array(THREATS, dtype=object)[scores.argmax(axis=1)], CLEAR)
            level = float(top[flags].min()) if flags.any() else NEVER_FLAG
            return labels, {t: level for t in THREATS}, policy
        unseen = graph.created_at >= (self.split.train_end if self.split else 0)
        thresholds = self.policy_thresholds(scores[unseen], graph.labels[unseen], policy)
        return labels_at(scores, thresholds), thresholds, policy

    def score_frame(self, graph: RiskGraph) -> pd.DataFrame:
        """``account_id``, one column per threat, and ``label``, for every account."""
        scores = self.decision_function(graph)
        frame = pd.DataFrame(scores, columns=list(THREATS))
        frame.insert(0, ACCOUNT.key, graph.ids[ACCOUNT.label])
        frame["label"] = self.predict(graph, scores)
        return frame

    # -- persistence --------------------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write the model to a folder: ``gnn.pt``, ``model.json`` and the baseline's boosters."""
        self._check_trained()
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.gnn.state_dict(), path / "gnn.pt")  # type: ignore[union-attr]
        spec = {
            "config": self.config.as_dict(),
            "use_baseline": self.baseline is not None,
            "metadata": self.metadata,
            "feature_names": self.feature_names,
            "scaler": self.scaler.state(),  # type: ignore[union-attr]
            "calibrators": {t: {s: c.state() for s, c in cals.items()} for t, cals in self.calibrators.items()},
            "choice": self.choice,
            "thresholds": self.thresholds,
            "pu": {t: c.state() for t, c in self.pu.items()},
            "policy": self.policy.as_dict(),
            "split": self.split.as_dict() if self.split else None,
            "validation": self.validation,
            "history": self.history,
            "trained_on": self.trained_on,
        }
        (path / "model.json").write_text(json.dumps(spec, indent=1, default=float), encoding="utf-8")
        if self.baseline is not None:
            (path / "baseline.json").write_text(json.dumps(self.baseline.state()), encoding="utf-8")
        return path

    def _check_trained(self) -> None:
        if self.gnn is None:
            raise ModelError("nothing to save: the model is not trained")

    @classmethod
    def load(cls, path: Path) -> RiskModel:
        """Read a model written by :meth:`save`."""
        try:
            spec = json.loads((path / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"{path} does not hold a ringwatch model: {e}") from e
        config = spec["config"]
        config["fanout"] = tuple(config["fanout"])
        model = cls(TrainConfig(**config), use_baseline=spec["use_baseline"])
        node_types, edge_types = spec["metadata"]
        model.metadata = (node_types, [tuple(e) for e in edge_types])
        model.feature_names = spec["feature_names"]
        model.scaler = FeatureScaler.from_state(spec["scaler"])
        in_channels = {t: len(model.feature_names[t]) for t in node_types}
        c = model.config
        model.gnn = RiskSAGE(model.metadata, in_channels, c.hidden, c.num_layers, c.dropout)
        model.gnn.load_state_dict(torch.load(path / "gnn.pt", map_location="cpu", weights_only=True))
        model.calibrators = {
            t: {s: PlattCalibrator(**v) for s, v in cals.items()} for t, cals in spec["calibrators"].items()
        }
        model.choice, model.thresholds = spec["choice"], spec["thresholds"]
        model.pu = {t: PUCalibrator(**v) for t, v in spec.get("pu", {}).items()}  # older models: uncorrected
        model.policy = ThresholdPolicy(**spec["policy"]) if "policy" in spec else ThresholdPolicy()
        model.split = TimeSplit(**spec["split"]) if spec["split"] else None
        model.validation, model.history, model.trained_on = spec["validation"], spec["history"], spec["trained_on"]
        if spec["use_baseline"]:
            state = json.loads((path / "baseline.json").read_text(encoding="utf-8"))
            model.baseline = GraphBoostBaseline.from_state(state, c.supernode_cap)
        return model
