"""The per-target choice between the GNN, the boosted baseline and their average, shared by every estimator.

Each source's raw scores (GNN logits, baseline margins) are calibrated per target on validation nodes (Platt
scaling); per target the source with the best validation AUPRC is shipped, and its probabilities are corrected
for partial labels (:class:`gnn.thresholds.PUCalibrator`: with every positive labelled it is a no-op up to a
monotone map). Given each node's known-fraud ties (``raw[KNOWN_TIES]``, :mod:`gnn.known_ties`), that correction
weighs them too. :class:`gnn.estimator.RiskModel` (the exchange's threats) and
:class:`gnn.graph_model.GraphRiskModel` (any graph's label columns) are both built on :class:`SourceChoice`, and
both train their sources with :func:`train_sources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gnn.baseline import GraphBoostBaseline
from gnn.metrics import PlattCalibrator, threat_metrics
from gnn.thresholds import PUCalibrator
from gnn.train import TrainConfig, TrainingData, build_model, predict_logits

#: The sources a target can ship: the GNN, the baseline, or the mean of their calibrated probabilities.
SOURCES = ("gnn", "baseline", "ensemble")
#: Fewer labelled validation positives than this and the sources are not ranked: the ensemble ships. Their AUPRC
#: on 1-3 positives is noise, and picking by it once shipped a baseline whose test AUPRC was 0.02 with a threshold
#: that flagged 2.8 % of benign accounts (10 %-labelled generated exchange, README); a source whose calibrated
#: probabilities are nearly flat (Platt on a useless score) leaves the mean in the other's order.
MIN_CHOICE_POSITIVES = 5
#: The key of the raw scores' dict that holds, per node and target, its known-fraud ties
#: (:func:`gnn.known_ties.known_fraud_ties`): not a source, the second input of the partial-label correction.
KNOWN_TIES = "known_ties"


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))``, clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


@dataclass
class TrainedSources:
    """The trained GNN (weights loaded), the baseline (None without one) and their raw scores on every node."""

    gnn: torch.nn.Module
    baseline: GraphBoostBaseline | None
    raw: dict[str, np.ndarray]


def train_sources(
    td: TrainingData,
    features: np.ndarray | None,
    config: TrainConfig,
    state_dict: dict[str, torch.Tensor],
    gnn: torch.nn.Module | None = None,
) -> TrainedSources:
    """Load the trained GNN weights, train the baseline on ``features`` (None: no baseline), score every node.

    Args:
        td: the prepared graph the GNN was trained on.
        features: the baseline's ``[N_target, F]`` feature table (:func:`gnn.baseline.neighbourhood_features`).
        config: hyper-parameters (the baseline takes its seed and super-node cap).
        state_dict: the GNN's trained weights.
        gnn: an untrained module of the trained one's architecture (default :func:`gnn.train.build_model`).
    """
    model = gnn if gnn is not None else build_model(td.data, config, td.target_type, len(td.target_names))
    model.load_state_dict(state_dict)
    model = model.to(torch.device("cpu"))
    raw = {"gnn": predict_logits(model, td.data, torch.device("cpu"))}
    baseline = None
    if features is not None:
        train = np.concatenate([td.train_labelled, td.train_unlabelled])
        weights = np.concatenate(
            [np.ones(len(td.train_labelled)), np.full(len(td.train_unlabelled), config.unlabelled_sample)]
        )
        baseline = GraphBoostBaseline(supernode_cap=config.supernode_cap, seed=config.seed)
        baseline.fit(features, td.targets.numpy(), train, weights, td.val, td.target_names)
        raw["baseline"] = baseline.decision_function(features)
    return TrainedSources(model, baseline, raw)


class SourceChoice:
    """Per-target calibrators, the shipped source and the partial-label correction, chosen on validation.

    Args:
        target_names: one name per output column (the exchange: :data:`graph.schema.THREATS`).
    """

    def __init__(self, target_names: tuple[str, ...]) -> None:
        self.target_names = tuple(target_names)
        self.calibrators: dict[str, dict[str, PlattCalibrator]] = {}
        self.choice: dict[str, str] = {}
        self.pu: dict[str, PUCalibrator] = {}
        self.validation: dict[str, Any] = {}

    def _calibrate_and_choose(
        self, raw: dict[str, np.ndarray], targets: np.ndarray, val: np.ndarray, train_labelled: np.ndarray
    ) -> None:
        """Per target: calibrate each source, choose the best, estimate the label frequency — on validation.

        A target without a positive among the validation nodes (a small exchange, a rare threat — labels
        come in bursts) is calibrated on the labelled training nodes *together with* the validation
        nodes: the positives are in-sample (their scores flattered, so the label frequency comes out high
        and the corrected probabilities low — the cautious side), the validation negatives are not; the GNN
        is shipped for it, since in-sample the boosted trees memorise their positives and would always look
        best. ``validation[target]["fitted_on"]`` says which. With no positive anywhere, the threshold is
        above every score: the model flags nothing it cannot back with a single example. With fewer than
        :data:`MIN_CHOICE_POSITIVES` validation positives the sources are not ranked: the ensemble ships.
        """
        self.validation = {}
        sources = {k: v for k, v in raw.items() if k != KNOWN_TIES}
        ties = raw.get(KNOWN_TIES)
        for i, threat in enumerate(self.target_names):
            fitted_on, rows = "validation", val
            if not targets[val, i].any():
                fitted_on, rows = (
                    "labelled training + validation (no validation positive)",
                    np.concatenate([train_labelled, val]),
                )
            y = targets[rows, i].astype(bool)
            cal = {src: PlattCalibrator.fit(y, r[rows, i]) for src, r in sources.items()}
            probs = {src: cal[src](r[rows, i]) for src, r in sources.items()}
            if len(probs) > 1:
                probs["ensemble"] = np.mean([probs["gnn"], probs["baseline"]], axis=0)
            scores = {src: threat_metrics(y, p, 0.5)["auprc"] for src, p in probs.items()}
            best = max(scores, key=lambda s: -1.0 if np.isnan(scores[s]) else scores[s])
            if rows is not val:
                best = "gnn"  # in-sample, boosted trees memorise their training positives and would always win
            elif y.sum() < MIN_CHOICE_POSITIVES and "ensemble" in probs:
                best = "ensemble"  # too few positives to rank the sources; the mean keeps the better one's order
            self.calibrators[threat] = cal
            self.choice[threat] = best
            self.pu[threat] = PUCalibrator.fit(y, logit(probs[best]), None if ties is None else ties[rows, i])
            if not y.any():
                fitted_on = "nothing (no labelled positive): never flags"
            self.validation[threat] = {
                "auprc": scores,
                "chosen": best,
                "fitted_on": fitted_on,
                "label_frequency": self.pu[threat].frequency,
                "known_ties_weight": self.pu[threat].ties_coef,
                "labelled_positives": int(y.sum()),
            }

    @staticmethod
    def _source_probs(
        cal: dict[str, PlattCalibrator], raw: dict[str, np.ndarray], rows: np.ndarray | slice, i: int, source: str
    ) -> np.ndarray:
        """Calibrated scores of target ``i`` from ``source`` (``ensemble``: the mean of GNN and baseline)."""
        if source == "ensemble":
            return np.mean([cal["gnn"](raw["gnn"][rows, i]), cal["baseline"](raw["baseline"][rows, i])], axis=0)
        return cal[source](raw[source][rows, i])

    def calibrate(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities ``[n, n_targets]`` from raw scores of any ``n`` nodes: the shipped source per target,
        Platt-calibrated, then corrected for partial labels (:class:`gnn.thresholds.PUCalibrator`)."""
        n = len(raw["gnn"])
        out = np.zeros((n, len(self.target_names)), dtype=np.float64)
        ties = raw.get(KNOWN_TIES)
        for i, threat in enumerate(self.target_names):
            g = self._source_probs(self.calibrators[threat], raw, slice(None), i, self.choice[threat])
            out[:, i] = self.pu[threat](logit(g), None if ties is None else ties[:, i]) if threat in self.pu else g
        return out

    def source_probs(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each source's calibrated probabilities ``[n, n_targets]`` (no partial-label correction), for
        comparing the sources; ``shipped`` is :meth:`calibrate`'s."""
        names = list(enumerate(self.target_names))
        out = {
            src: np.column_stack([self._source_probs(self.calibrators[t], raw, slice(None), i, src) for i, t in names])
            for src in SOURCES
            if src in raw or (src == "ensemble" and "baseline" in raw)
        }
        out["shipped"] = self.calibrate(raw)
        return out
