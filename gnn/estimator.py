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
from gnn.metrics import PlattCalibrator, threat_metrics
from gnn.model import RiskSAGE
from gnn.normalize import FeatureScaler
from gnn.split import TimeSplit
from gnn.thresholds import PUCalibrator, ThresholdPolicy, benign_weights, budget_flags, fpr_level, labels_at
from gnn.train import EpochResult, TrainConfig, TrainingData, fit_gnn, predict_logits, prepare_training, standardised
from graph.errors import ModelError
from graph.schema import ACCOUNT, BENIGN, CLEAR, THREATS

SOURCES = ("gnn", "baseline", "ensemble")
#: The threshold of a threat the model has no labelled example of: above every calibrated score.
NEVER_FLAG = 1.01


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


class RiskModel:
    """Scores accounts for collusion, promotion abuse and bot farms.

    Args:
        config: GNN hyper-parameters.
        use_baseline: also train the baseline (needed for the per-threat choice).
    """

    def __init__(
        self, config: TrainConfig | None = None, use_baseline: bool = True, policy: ThresholdPolicy | None = None
    ) -> None:
        self.config = config or TrainConfig()
        self.use_baseline = use_baseline
        self.policy = policy or ThresholdPolicy()
        self.pu: dict[str, PUCalibrator] = {}
        self.gnn: RiskSAGE | None = None
        self.scaler: FeatureScaler | None = None
        self.baseline: GraphBoostBaseline | None = None
        self.calibrators: dict[str, dict[str, PlattCalibrator]] = {}
        self.choice: dict[str, str] = {}
        self.thresholds: dict[str, float] = {}
        self.split: TimeSplit | None = None
        self.feature_names: dict[str, list[str]] = {}
        self.metadata: tuple[list[str], list[tuple[str, str, str]]] | None = None
        self.validation: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.trained_on: str = ""

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
        self.gnn = self._new_gnn(td.data)
        self.gnn.load_state_dict(state_dict)
        self.history = [asdict(h) for h in history or []]
        self.trained_on = graph.content_hash
        raw = {"gnn": predict_logits(self.gnn, td.data, torch.device("cpu"))}
        if self.use_baseline:
            features, _ = neighbourhood_features(graph, self.config.supernode_cap)
            train = np.concatenate([td.train_labelled, td.train_unlabelled])
            weights = np.concatenate(
                [np.ones(len(td.train_labelled)), np.full(len(td.train_unlabelled), self.config.unlabelled_sample)]
            )
            self.baseline = GraphBoostBaseline(supernode_cap=self.config.supernode_cap, seed=self.config.seed)
            self.baseline.fit(features, td.targets.numpy(), train, weights, td.val)
            raw["baseline"] = self.baseline.decision_function(features)
        self._calibrate_and_choose(raw, td.targets.numpy(), td.val, td.train_labelled)
        self._set_thresholds(raw, graph.labels, td.val)
        return self

    def _calibrate_and_choose(
        self, raw: dict[str, np.ndarray], targets: np.ndarray, val: np.ndarray, train_labelled: np.ndarray
    ) -> None:
        """Per threat: calibrate each source, choose the best, estimate the label frequency — on validation.

        A threat without a positive among the validation accounts (a small exchange, a rare threat — labels
        come in bursts) is calibrated on the labelled training accounts *together with* the validation
        accounts: the positives are in-sample (their scores flattered, so the label frequency comes out high
        and the corrected probabilities low — the cautious side), the validation negatives are not; the GNN
        is shipped for it, since in-sample the boosted trees memorise their positives and would always look
        best. ``validation[threat]["fitted_on"]`` says which. With no positive anywhere, the threshold is
        above every score: the model flags nothing it cannot back with a single example.
        """
        self.validation = {}
        for i, threat in enumerate(THREATS):
            fitted_on, rows = "validation", val
            if not targets[val, i].any():
                fitted_on, rows = (
                    "labelled training + validation (no validation positive)",
                    np.concatenate([train_labelled, val]),
                )
            y = targets[rows, i].astype(bool)
            cal = {src: PlattCalibrator.fit(y, r[rows, i]) for src, r in raw.items()}
            probs = {src: cal[src](r[rows, i]) for src, r in raw.items()}
            if len(probs) > 1:
                probs["ensemble"] = np.mean([probs["gnn"], probs["baseline"]], axis=0)
            scores = {src: threat_metrics(y, p, 0.5)["auprc"] for src, p in probs.items()}
            best = max(scores, key=lambda s: -1.0 if np.isnan(scores[s]) else scores[s])
            if rows is not val:
                best = "gnn"  # in-sample, boosted trees memorise their training positives and would always win
            self.calibrators[threat] = cal
            self.choice[threat] = best
            self.pu[threat] = PUCalibrator.fit(y, _logit(probs[best]))
            if not y.any():
                fitted_on = "nothing (no labelled positive): never flags"
            self.validation[threat] = {
                "auprc": scores,
                "chosen": best,
                "fitted_on": fitted_on,
                "label_frequency": self.pu[threat].frequency,
                "labelled_positives": int(y.sum()),
            }

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

    @staticmethod
    def _source_probs(
        cal: dict[str, PlattCalibrator], raw: dict[str, np.ndarray], rows: np.ndarray | slice, i: int, source: str
    ) -> np.ndarray:
        """Calibrated scores of threat ``i`` from ``source`` (``ensemble``: the mean of GNN and baseline)."""
        if source == "ensemble":
            return np.mean([cal["gnn"](raw["gnn"][rows, i]), cal["baseline"](raw["baseline"][rows, i])], axis=0)
        return cal[source](raw[source][rows, i])

    def _new_gnn(self, data) -> RiskSAGE:
        in_channels = {t: int(data[t].x.shape[1]) for t in data.node_types}
        c = self.config
        return RiskSAGE(data.metadata(), in_channels, c.hidden, c.num_layers, c.dropout)

    # -- scoring ------------------------------------------------------------------------------------

    def check_compatible(self, graph: RiskGraph) -> None:
        """Raise ModelError unless the model is trained and ``graph`` has the model's features."""
        if self.gnn is None or self.scaler is None:
            raise ModelError("the model is not trained: call fit() or RiskModel.load()")
        if graph.feature_names != self.feature_names:
            raise ModelError("the graph's features differ from the model's (different ringwatch version?)")

    def raw_scores(self, graph: RiskGraph) -> dict[str, np.ndarray]:
        """Uncalibrated scores per source: GNN logits and baseline margins, ``[N_account, n_threats]``."""
        self.check_compatible(graph)
        data = standardised(graph, self.scaler)  # type: ignore[arg-type]
        raw = {"gnn": predict_logits(self.gnn, data, self.config.resolved_device())}  # type: ignore[arg-type]
        baseline = self.baseline_raw(graph)
        if baseline is not None:
            raw["baseline"] = baseline
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

    def calibrate(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities of fraud ``[n, n_threats]`` from raw scores of any ``n`` accounts (see :meth:`raw_scores`):
        Platt-calibrated, then corrected for partial labels (:class:`gnn.thresholds.PUCalibrator`)."""
        n = len(raw["gnn"])
        out = np.zeros((n, len(THREATS)), dtype=np.float64)
        for i, threat in enumerate(THREATS):
            g = self._source_probs(self.calibrators[threat], raw, slice(None), i, self.choice[threat])
            out[:, i] = self.pu[threat](_logit(g)) if threat in self.pu else g
        return out

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
