"""From scores to decisions under partial labels: PU correction and threshold policies.

**Why.** Labels are partial: most fraud accounts carry no label. A model calibrated on validation with the
unlabelled accounts counted as negatives estimates the probability that an account is *labelled* fraud,
``g(x) = P(labelled | x)``, and a threshold chosen as the best F1 against those labels lands far above the
useful range, because most true positives above it count as false ones.

**PU correction** (Elkan & Noto, 2008). If labelled fraud is a random share ``c`` of all fraud (the label
frequency), ``g(x) = P(labelled | x) = c · P(fraud | x)``. :class:`PUCalibrator` fits that model directly
on the validation accounts — ``P(labelled | x) = c · σ(a·z + b)``, ``z`` the model's score (its Platt logit),
by maximum likelihood over ``a``, ``b`` and ``c`` — and returns ``σ(a·z + b)``, the probability of fraud,
which the scoring job writes as ``risk_<threat>``. Fitting ``c`` with the curve matters: Elkan & Noto's
*e1* (the mean Platt ``g`` of the labelled positives, then ``g / c``) assumes a curve that a Platt sigmoid
cannot draw (flat at ``c`` where accounts are surely fraud) and came out at 0.21 for a true 0.3 on a
simulated exchange, and at a twentieth of the truth on weak models, flagging 2–5 % of benign accounts. The
joint fit recovers 0.30 there. On a weak signal the likelihood cannot tell "few fraud accounts, most
labelled" from "many fraud accounts, few labelled" (``c`` → 0 with every probability near 1 fits as well as
``c = 1``, and flagged a whole 6,000-account exchange in a test run), so the fit carries a weak prior for
fewer fraud accounts (:data:`PREVALENCE_PENALTY` per account): on weak signals ``c`` stays at 1 — no
correction, the cautious side — while strong signals still recover it (0.31 for 0.3;
``tests/unit/test_thresholds.py``). With fewer than :data:`MIN_PU_POSITIVES` labelled positives among the
validation accounts there is nothing to fit ``c`` on, and the scores stay as calibrated.

**Known-fraud ties** (:mod:`gnn.known_ties`) enter the same fit as a second input:
``P(labelled | z, ties) = c · σ(a·z + w·log(1 + ties) + b)``, ``w >= 0`` with a unit ridge penalty, fitted from
:data:`MIN_TIES_POSITIVES` labelled validation positives with ``c`` held at 1 below :data:`MIN_PU_POSITIVES`.

**Threshold policies** (one is recorded with the model, shown by ``investigate`` and the report):

- ``fpr``: a target account false-positive rate. Benign accounts are unknown, so the rate is estimated on
  the accounts the model did not train on: known-benign accounts count fully, unlabelled accounts by their
  corrected probability of being benign (``1 - Σ_t P(threat t | x)``), labelled fraud not at all. The target
  is shared equally by the threats the model can flag (so the account rate stays within it whatever the
  overlap), and each threat's threshold is the lowest whose estimated rate is within its share. The
  known-benign accounts then check the estimate: while the lower 95 % confidence bound of *their* flagged
  share is above the threat's share (the PU estimate is contradicted by the accounts we know are benign),
  the threshold is raised. (One common level for all threats, tried first, let one threat with an
  underestimated label frequency block every threat.)
- ``budget``: a review budget: the ``K`` accounts with the highest probability are flagged, exactly ``K``
  (ties broken by account order), whatever their score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from graph.schema import CLEAR, THREATS

#: The default target account false-positive rate of the per-account decisions (README, "Thresholds").
DEFAULT_FPR_TARGET = 0.01
#: Confidence of the known-benign check (one-sided Wilson lower bound).
KNOWN_BENIGN_Z = 1.645
#: Smallest label frequency reported (the fit's lower bound is σ(-7) ≈ 1e-3).
MIN_LABEL_FREQUENCY = 1e-3
#: Per account, the cost of calling it fraud in the PU fit: a weak prior for the explanation with fewer fraud
#: accounts when the data cannot tell them apart (see :class:`PUCalibrator`).
PREVALENCE_PENALTY = 0.02
#: Fewer labelled positives than this and the fit is not attempted: the scores stay as calibrated (c = 1).
MIN_PU_POSITIVES = 20
#: Fewer labelled positives than this and the known-fraud ties are not weighed (:mod:`gnn.known_ties`).
MIN_TIES_POSITIVES = 5
#: The label frequency's logit when it is not fitted: σ(12) ≈ 1 − 6e-6, i.e. c = 1.
FIXED_FREQUENCY_LOGIT = 12.0


@dataclass(frozen=True)
class ThresholdPolicy:
    """How thresholds are chosen: a target account false-positive rate, or a review budget.

    Args:
        kind: ``"fpr"`` or ``"budget"``.
        fpr_target: target account FPR in (0, 1) (``fpr``).
        budget: accounts flagged per run, >= 0 (``budget``).
    """

    kind: str = "fpr"
    fpr_target: float | None = DEFAULT_FPR_TARGET
    budget: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "fpr":
            if self.fpr_target is None or not 0.0 < self.fpr_target < 1.0:
                raise ValueError(f"fpr_target must be in (0, 1), got {self.fpr_target}")
        elif self.kind == "budget":
            if self.budget is None or self.budget < 0:
                raise ValueError(f"budget must be a count >= 0, got {self.budget}")
        else:
            raise ValueError(f"kind must be 'fpr' or 'budget', got {self.kind!r}")

    @classmethod
    def from_options(cls, fpr_target: float | None, budget: int | None) -> ThresholdPolicy | None:
        """The policy a command's ``--fpr-target`` / ``--budget`` ask for (None: keep the model's)."""
        if fpr_target is not None and budget is not None:
            raise ValueError("give --fpr-target or --budget, not both")
        if budget is not None:
            return cls(kind="budget", fpr_target=None, budget=budget)
        if fpr_target is not None:
            return cls(kind="fpr", fpr_target=fpr_target)
        return None

    def describe(self) -> str:
        """One line for people: ``target account FPR 0.50 %`` or ``review budget 200 accounts``."""
        if self.kind == "budget":
            return f"review budget {self.budget:,} accounts"
        return f"target account FPR {100 * float(self.fpr_target or 0):.2f} %"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_thresholds(thresholds: Mapping[str, float | None]) -> str:
    """One line for people: ``collusion 0.119, promo_abuse 0.122, bot_farm 3.69e-24``, to 3 significant digits
    (a threshold near 0 is shown as it is, not as 0.000); threats without one are left out."""
    return ", ".join(f"{t} {v:.3g}" for t, v in thresholds.items() if v is not None)


class PUCalibrator:
    """``P(fraud | z, ties) = σ(coef·z + ties_coef·log(1 + ties) + intercept)``, fitted with the label frequency
    ``c`` from partial labels.

    Args:
        coef, intercept: the curve on the score ``z``.
        frequency: the label frequency ``c`` (share of fraud that is labelled).
        ties_coef: the weight of the account's known-fraud ties (:mod:`gnn.known_ties`); 0 when they were not
            given to :meth:`fit` or said nothing.
    """

    def __init__(
        self, coef: float = 1.0, intercept: float = 0.0, frequency: float = 1.0, ties_coef: float = 0.0
    ) -> None:
        self.coef, self.intercept, self.frequency = float(coef), float(intercept), float(frequency)
        self.ties_coef = float(ties_coef)

    @classmethod
    def fit(cls, labelled: np.ndarray, z: np.ndarray, ties: np.ndarray | None = None) -> PUCalibrator:
        """Maximum likelihood of ``P(labelled | z, ties) = c · σ(a·z + w·log(1 + ties) + b)`` (see the module
        docstring), ``w >= 0`` with a unit ridge penalty. With fewer than :data:`MIN_PU_POSITIVES` labelled
        positives ``c`` is not fitted (1); with fewer than :data:`MIN_TIES_POSITIVES`, or without ``ties`` and
        too few for ``c``, nothing is (the identity on ``z``).

        Shapes:
            labelled: ``[n]`` booleans (every unlabelled account is 0); z: ``[n]`` scores; ties: ``[n]`` counts.
        """
        from scipy.optimize import minimize

        y = np.asarray(labelled, dtype=np.float64)
        z = np.asarray(z, dtype=np.float64)
        e = np.zeros_like(z) if ties is None else np.log1p(np.asarray(ties, dtype=np.float64))
        fit_c = y.sum() >= MIN_PU_POSITIVES
        fit_ties = ties is not None and y.sum() >= MIN_TIES_POSITIVES
        if not (fit_c or fit_ties) or y.all():
            return cls()

        def loss(theta: np.ndarray) -> float:
            a, w, b, t = theta
            log_c = -np.logaddexp(0.0, -t)  # c = σ(t) in (0, 1)
            u = a * z + w * e + b
            log_p = log_c - np.logaddexp(0.0, -u)  # log(c σ(u))
            log_q = np.log1p(-np.exp(np.minimum(log_p, -1e-12)))  # log(1 - c σ(u))
            fraud = np.exp(-np.logaddexp(0.0, -u)).sum()
            return float(-(y * log_p + (1 - y) * log_q).sum() + PREVALENCE_PENALTY * fraud + 0.5 * w * w)

        best = None
        # c from ≈ 1 (Platt), ½ and ⅛, keeping the best likelihood; or c held at 1.
        for t0 in (6.0, 0.0, -2.0) if fit_c else (FIXED_FREQUENCY_LOGIT,):
            result = minimize(
                loss,
                np.array([1.0, 0.0, float(np.log(y.mean() / (1 - y.mean()))), t0]),
                method="L-BFGS-B",
                bounds=[
                    (1e-3, 50.0),
                    (0.0, 20.0 if fit_ties else 0.0),
                    (-50.0, 50.0),
                    (-7.0, 12.0) if fit_c else (FIXED_FREQUENCY_LOGIT, FIXED_FREQUENCY_LOGIT),
                ],
            )
            if best is None or result.fun < best.fun:
                best = result
        if best is None:  # unreachable: the loop above runs at least once
            raise ValueError("no starting point")
        a, w, b, t = best.x
        frequency = max(float(1 / (1 + np.exp(-t))), MIN_LABEL_FREQUENCY) if fit_c else 1.0
        return cls(a, b, frequency, w)

    def __call__(self, z: np.ndarray, ties: np.ndarray | None = None) -> np.ndarray:
        u = self.coef * np.asarray(z, dtype=np.float64) + self.intercept
        if self.ties_coef:
            if ties is None:
                raise ValueError("this calibration weighs known-fraud ties (gnn.known_ties): pass them")
            u = u + self.ties_coef * np.log1p(np.asarray(ties, dtype=np.float64))
        return 1.0 / (1.0 + np.exp(-u))

    def labelled(self, z: np.ndarray, ties: np.ndarray | None = None) -> np.ndarray:
        """``P(labelled | z, ties) = c · P(fraud | z, ties)``."""
        return self.frequency * self(z, ties)

    def state(self) -> dict[str, float]:
        return {
            "coef": self.coef,
            "intercept": self.intercept,
            "frequency": self.frequency,
            "ties_coef": self.ties_coef,
        }


def wilson_lower(k: int, n: int, z: float = KNOWN_BENIGN_Z) -> float:
    """One-sided Wilson lower confidence bound of a proportion ``k / n``; exactly 0 when ``k`` is (the formula's
    float rounding left a few 1e-18 over it, which is "above" a rate of 0)."""
    if n == 0 or k == 0:
        return 0.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def benign_weights(probs: np.ndarray, known_benign: np.ndarray, unlabelled: np.ndarray) -> np.ndarray:
    """Each account's weight as a benign account: 1 known benign, ``1 - Σ_t P`` unlabelled, 0 labelled fraud."""
    benign = np.clip(1.0 - probs.sum(axis=1), 0.0, 1.0)
    return np.where(known_benign, 1.0, np.where(unlabelled, benign, 0.0))


def fpr_level(prob: np.ndarray, weight: np.ndarray, known_benign: np.ndarray, target: float) -> float:
    """One threat's threshold under a false-positive-rate target (see the module docstring).

    Shapes:
        prob: ``[n]`` the threat's corrected probabilities; weight: ``[n]`` benign weights
        (:func:`benign_weights`); known_benign: ``[n]``.

    Returns:
        The threshold; above 1 (flag nothing) when even the riskiest account breaks the target.
    """
    total = weight.sum()
    if len(prob) == 0 or total <= 0:
        return 1.0 + 1e-9
    order = np.argsort(-prob, kind="stable")
    fp = np.cumsum(weight[order]) / total
    kb = np.cumsum(known_benign[order])
    n_kb = int(known_benign.sum())
    # A cut after position i flags order[: i + 1]; cuts never split equal scores. Both estimates only grow
    # with the cut, so the lowest threshold is the last cut before the first one over the target.
    ends = np.flatnonzero(np.r_[prob[order][1:] < prob[order][:-1], True])
    best = -1
    for i in ends:
        if fp[i] > target or wilson_lower(int(kb[i]), n_kb) > target:
            break
        best = int(i)
    return float(prob[order][best]) if best >= 0 else 1.0 + 1e-9


def budget_flags(margin: np.ndarray, budget: int) -> np.ndarray:
    """Exactly ``min(budget, n)`` accounts flagged: the highest ``margin`` first, ties by position.

    Shapes:
        margin: ``[n]`` (an account's largest probability, or score over threshold).
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    flags = np.zeros(len(margin), dtype=bool)
    flags[np.argsort(-np.asarray(margin), kind="stable")[:budget]] = True
    return flags


def labels_at(scores: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Per account, the threat whose threshold it crosses by the widest margin, else ``clear``.

    Shapes:
        scores: ``[n, n_threats]`` in :data:`graph.schema.THREATS` order.
    """
    margin = scores / np.maximum(np.array([thresholds[t] for t in THREATS]), 1e-9)
    labels = np.array(THREATS, dtype=object)[margin.argmax(axis=1)]
    return np.where(margin.max(axis=1) >= 1.0, labels, CLEAR)
