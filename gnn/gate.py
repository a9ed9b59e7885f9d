"""The validation gate: no model becomes the ``champion`` unless it passes it (``train`` and ``ringwatch promote``).

**Rules and defaults** (:class:`GateRules`, the one place they are set; the README's "Model governance"):

1. **No regression per threat**: on the evaluation accounts, each threat's AUPRC of the candidate is at least
   the champion's minus ``auprc_tolerance`` (0.05, absolute). Both models score the same accounts; a threat
   without a positive among them is reported as not measurable and does not fail. No champion: nothing to
   compare, the check passes.
2. **Calibration**: each threat's expected calibration error (10 equal-width bins) is at most ``max_ece``
   (0.05) — except a threat the model had no labelled example of, which it never flags.
3. **Bias**: the false-positive rate per group of country, KYC level, email domain and account age
   (:mod:`gnn.bias`): a group with at least 50 benign accounts fails when the lower confidence bound of its
   FPR (Wilson, at 1 - 0.05 / the number of groups judged) exceeds 1.25 × the overall FPR. Flagged-rate
   ratios are reported beside it.

**Evaluation accounts**: those created after the training period of the candidate (and of the champion, so
neither has trained on them): the validation and test periods of the time split. **Labels**: with a truth
file (``ringwatch generate`` writes one; the tests use it) every evaluation account in it, against the truth:
the benign accounts of the FPR are the truly benign ones. In production, the labels the graph has: known fraud
labels and confirmed verdicts are the fraud; the benign accounts of the FPR are the *known-benign* ones (a
benign label, or a false-positive verdict). Unlabelled accounts are left out of the FPR, because hidden fraud is
not spread evenly: on a generated 20k exchange, counting them as benign put the FPR of accounts younger than 30
days at 4.2 % against 1.9 % overall (a failed gate), where the truth says 0.37 % against 0.30 % — the model flags
more where there is more fraud, which the bias test must allow. They count in AUPRC (as negatives) and in the
flagged rates. Calibration is then checked on what the labels can show: the probability of being *labelled*
(the model's probability of fraud times the label frequency it estimated,
:class:`gnn.thresholds.PUCalibrator`) against the labels.

A flagged account is one the model's own thresholds flag (``RiskModel.predict``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gnn.bias import BiasRule, account_groups, bias_report, failure_reason, worst_group
from gnn.evaluation import truth_targets
from gnn.graph_data import LABEL_CODES, RiskGraph
from gnn.metrics import calibration, threat_metrics
from graph.errors import ModelError, RingwatchError
from graph.schema import BENIGN, CLEAR, THREATS

if TYPE_CHECKING:
    from gnn.estimator import RiskModel

#: Labels of a gate run on a truth file, and on the graph's own labels.
TRUTH_LABELS = "truth file"
KNOWN_LABELS = (
    "known labels (known fraud and confirmed verdicts are fraud; known-benign accounts and false-positive "
    "verdicts the benign ones of the FPR; unlabelled accounts count in AUPRC as negatives and in flagged rates)"
)


class GateFailed(RingwatchError):
    """A model did not pass the validation gate, so it cannot become the champion (``--force`` overrides)."""


@dataclass(frozen=True)
class GateRules:
    """The gate's rules (see the module docstring).

    Args:
        auprc_tolerance: the largest allowed drop of a threat's AUPRC below the champion's (absolute).
        max_ece: the largest allowed expected calibration error of a threat.
        bias: the bias test's rule.
    """

    auprc_tolerance: float = 0.05
    max_ece: float = 0.05
    bias: BiasRule = field(default_factory=BiasRule)

    def __post_init__(self) -> None:
        if not 0.0 <= self.auprc_tolerance <= 1.0:
            raise ValueError(f"auprc_tolerance must be in [0, 1], got {self.auprc_tolerance}")
        if not 0.0 < self.max_ece <= 1.0:
            raise ValueError(f"max_ece must be in (0, 1], got {self.max_ece}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateReport:
    """What the gate found for one model version.

    Attributes:
        model_version: the candidate; champion_version: the model it was compared with (None: no champion).
        passed: every check passed; reasons: one readable line per failed check (group and metric named).
        labels: which labels it was measured against; evaluated_accounts: how many accounts.
        threats: per threat ``{auprc, champion_auprc, positives, ece, auprc_ok, ece_ok, never_flags}``.
        bias: :func:`gnn.bias.bias_report`'s result.
        rules: the rules applied.
        notes: what could not be checked, and why (a champion with other features cannot be compared).
    """

    model_version: str
    champion_version: str | None
    passed: bool
    reasons: list[str]
    labels: str
    evaluated_accounts: int
    threats: dict[str, dict[str, Any]]
    bias: dict[str, Any]
    rules: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``gate_report.json`` stored with the model)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def summary(self) -> str:
        """One line: ``passed`` or ``failed: <first reason>`` (and how many more)."""
        if self.passed:
            return "passed"
        more = f" (and {len(self.reasons) - 1} more)" if len(self.reasons) > 1 else ""
        return f"failed: {self.reasons[0]}{more}"

    def metrics(self) -> dict[str, float]:
        """Numbers for MLflow: ``gate_passed``, per threat ``gate_auprc_*``/``gate_ece_*``, overall and worst FPR."""
        out: dict[str, float] = {"gate_passed": float(self.passed)}
        for threat, m in self.threats.items():
            out[f"gate_auprc_{threat}"] = float(m["auprc"])
            out[f"gate_ece_{threat}"] = float(m["ece"])
        out["gate_fpr_overall"] = float(self.bias["overall"]["fpr"])
        out["gate_flagged_rate_overall"] = float(self.bias["overall"]["flagged_rate"])
        worst = worst_group(self.bias)
        if worst is not None:
            out["gate_fpr_worst_ratio"] = float(worst["fpr_ratio"])
        return {k: v for k, v in out.items() if not math.isnan(v) and not math.isinf(v)}


def evaluation_accounts(graph: RiskGraph, *models: RiskModel | None) -> np.ndarray:
    """Accounts created after every given model's training period (the gate's evaluation accounts)."""
    start = max((m.split.train_end for m in models if m is not None and m.split is not None), default=0)
    return (graph.created_at > 0) & (graph.created_at >= start)


def validate_model(
    candidate: RiskModel,
    graph: RiskGraph,
    *,
    model_version: str,
    champion: RiskModel | None = None,
    champion_version: str | None = None,
    truth: pd.DataFrame | None = None,
    rules: GateRules | None = None,
    scores: np.ndarray | None = None,
) -> GateReport:
    """Run the gate on ``candidate`` against ``champion`` (None: there is none yet) on ``graph``.

    Args:
        candidate: the model that would become the champion.
        graph: the graph both models score (the snapshot the candidate trained on, or the current graph).
        model_version: the candidate's name in the report (``ringwatch-risk/<n>`` or a folder).
        champion: the current champion, if any; champion_version: its name.
        truth: a truth table (``account_id``, ``label``) to measure against instead of the graph's labels.
        rules: the rules (default :class:`GateRules`).
        scores: the candidate's scores of ``graph`` when already computed (the training job's); None scores here.

    Returns:
        The report; ``passed`` False with ``reasons`` when a check fails (nothing is raised for a failure).

    Raises:
        ModelError: a model cannot score ``graph`` (other features).
        ValueError: no evaluation account (every account is in a training period).
    """
    rules = rules or GateRules()
    evaluated = evaluation_accounts(graph, candidate, champion)
    benign: np.ndarray | None = None  # with a truth file: every account that is not fraud
    if truth is not None:
        targets, known = truth_targets(graph, truth)
        evaluated &= known
        fraud, label_source = targets.max(axis=1) > 0, TRUTH_LABELS
    else:
        targets = graph.threat_targets()
        fraud, label_source = graph.labels > 0, KNOWN_LABELS
        benign = graph.labels == LABEL_CODES[BENIGN]
    if not evaluated.any():
        raise ValueError("no account created after the models' training periods: nothing to validate on")
    scores = candidate.decision_function(graph) if scores is None else scores
    champion_scores, notes = None, []
    if champion is not None:
        try:
            champion_scores = champion.decision_function(graph)
        except ModelError as e:  # another feature version: nothing to compare on this graph
            notes.append(f"the champion {champion_version} cannot score this graph ({e}): AUPRC not compared")
    reasons: list[str] = []
    threats: dict[str, dict[str, Any]] = {}
    for i, threat in enumerate(THREATS):
        y = targets[evaluated, i].astype(bool)
        p = scores[evaluated, i]
        auprc = threat_metrics(y, p, 1.0)["auprc"]
        champ = math.nan if champion_scores is None else threat_metrics(y, champion_scores[evaluated, i], 1.0)["auprc"]
        auprc_ok = math.isnan(auprc) or math.isnan(champ) or auprc >= champ - rules.auprc_tolerance
        if not auprc_ok:
            reasons.append(
                f"{threat}: AUPRC {auprc:.3f} is more than {rules.auprc_tolerance:g} below the champion's "
                f"{champ:.3f} ({champion_version})"
            )
        frequency = 1.0
        if truth is None and threat in candidate.pu:
            frequency = candidate.pu[threat].frequency
        ece = calibration(y, frequency * p)["ece"]
        # A threat the model had no labelled example of is never flagged (its threshold is above every score):
        # its scores decide nothing, and there was nothing to calibrate them on.
        never_flags = candidate.validation.get(threat, {}).get("labelled_positives", 1) == 0
        ece_ok = never_flags or ece <= rules.max_ece
        if not ece_ok:
            reasons.append(f"{threat}: calibration error (ECE) {ece:.3f} is above the bound {rules.max_ece:g}")
        threats[threat] = {
            "auprc": auprc,
            "champion_auprc": champ,
            "positives": int(y.sum()),
            "ece": ece,
            "auprc_ok": auprc_ok,
            "ece_ok": ece_ok,
            "never_flags": never_flags,
        }
    flagged = candidate.predict(graph, scores) != CLEAR
    groups = account_groups(graph).loc[evaluated].reset_index(drop=True)
    bias = bias_report(
        flagged[evaluated], fraud[evaluated], groups, rules.bias, None if benign is None else benign[evaluated]
    )
    reasons += [failure_reason(row, bias["overall"]["fpr"], rules.bias) for row in bias["failures"]]
    return GateReport(
        model_version=model_version,
        champion_version=champion_version if champion is not None else None,
        passed=not reasons,
        reasons=reasons,
        labels=label_source,
        evaluated_accounts=int(evaluated.sum()),
        threats=threats,
        bias=bias,
        rules=rules.as_dict(),
        notes=notes,
    )
