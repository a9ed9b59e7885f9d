"""The bias test of the validation gate: who a model wrongly flags, per group of accounts.

A fraud model may flag more accounts where there is more fraud; it must not wrongly flag more *benign*
accounts in one country, KYC level, email provider or account age than overall. So the primary measure is
the **false-positive rate** per group — flagged benign accounts over benign accounts — computed with
fairlearn's :class:`~fairlearn.metrics.MetricFrame` over the groups of :data:`BIAS_GROUPS`. The flagged rate
(flagged over all accounts of the group) and its ratio to the overall one are reported beside it; they
decide nothing, since the fraud itself is not spread evenly.

**Rule** (:class:`BiasRule`, defaults in one place): among the groups with at least ``min_benign`` benign
accounts, a group fails when the one-sided lower confidence bound (Wilson) of its false-positive rate exceeds
``max_fpr_ratio`` × the overall false-positive rate. The bound's confidence is ``1 - alpha / m`` for ``m``
judged groups (Bonferroni: some 40 groups are tested at once, and at 95 % each, two would fail by chance).
The bound is what keeps a small group from failing by noise: 3 false positives among 289 benign accounts is a
rate of 1.04 %, 3.5 × an overall 0.30 % on a 20k exchange, but its lower bound at 1 - 0.05/40 is 0.21 %.
Groups below ``min_benign`` are reported and never fail; so is the group of accounts *without* the
attribute (``unknown``: no email address, say), which is a behaviour the model may use, not a country or a
provider it could be unfair to.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from gnn.graph_data import GROUP_ATTRIBUTES, RiskGraph
from gnn.thresholds import wilson_lower

#: The account age buckets, by days from sign-up to the graph's reference time (upper bounds; the last is open).
AGE_BUCKET_DAYS = (30, 90, 180, 365)
#: The grouping attributes of the bias test: the account properties, and the age bucket.
BIAS_GROUPS = (*GROUP_ATTRIBUTES, "account_age")
#: Group value of accounts whose attribute is missing.
UNKNOWN_GROUP = "unknown"


@dataclass(frozen=True)
class BiasRule:
    """When a group's false-positive rate fails the gate (see the module docstring).

    Args:
        max_fpr_ratio: the highest allowed ratio of a group's FPR (its lower bound) to the overall FPR.
        min_benign: benign accounts a group needs to be judged.
        alpha: the family-wise error rate of the bounds (each group's bound at ``1 - alpha / judged groups``).
    """

    max_fpr_ratio: float = 1.25
    min_benign: int = 50
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not self.max_fpr_ratio >= 1.0:
            raise ValueError(f"max_fpr_ratio must be >= 1, got {self.max_fpr_ratio}")
        if self.min_benign < 1:
            raise ValueError(f"min_benign must be >= 1, got {self.min_benign}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def z(self, judged_groups: int) -> float:
        """The one-sided normal quantile of each group's bound when ``judged_groups`` groups are judged."""
        return NormalDist().inv_cdf(1.0 - self.alpha / max(judged_groups, 1))


def age_bucket(days: np.ndarray) -> np.ndarray:
    """Bucket names (``<30d``, ``30-90d`` … ``>=365d``; ``unknown`` for a missing time) of ages in days."""
    edges = np.asarray(AGE_BUCKET_DAYS, dtype=np.float64)
    names = [f"<{AGE_BUCKET_DAYS[0]}d"]
    names += [f"{lo}-{hi}d" for lo, hi in zip(AGE_BUCKET_DAYS[:-1], AGE_BUCKET_DAYS[1:])]
    names.append(f">={AGE_BUCKET_DAYS[-1]}d")
    days = np.asarray(days, dtype=np.float64)
    which = np.searchsorted(edges, days, side="right")
    out = np.array(names, dtype=object)[np.clip(which, 0, len(names) - 1)]
    out[~np.isfinite(days)] = UNKNOWN_GROUP
    return out


def account_groups(graph: RiskGraph) -> pd.DataFrame:
    """Each account's group of every :data:`BIAS_GROUPS` attribute, as strings (``unknown`` where missing).

    Raises:
        ValueError: the graph was built without account attributes.
    """
    if graph.attributes is None:
        raise ValueError("the graph carries no account attributes (built before the bias test existed?)")
    frame = pd.DataFrame(index=range(graph.num_accounts))
    for name in GROUP_ATTRIBUTES:
        values = graph.attributes[name].astype(object)
        frame[name] = [UNKNOWN_GROUP if v is None or v is pd.NA or v != v else str(v) for v in values]
    created = graph.created_at.astype(np.float64)
    days = np.where(created > 0, (graph.reference_time - created) / 86_400, np.nan)
    frame["account_age"] = age_bucket(days)
    return frame


def _benign(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int((np.asarray(y_true) == 0).sum())


def _false_positives(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(((np.asarray(y_true) == 0) & (np.asarray(y_pred) == 1)).sum())


def _flagged(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int((np.asarray(y_pred) == 1).sum())


def _ratio(value: float, overall: float) -> float:
    if overall > 0:
        return value / overall
    return 1.0 if value == 0 else math.inf


def bias_report(
    flagged: np.ndarray,
    fraud: np.ndarray,
    groups: pd.DataFrame,
    rule: BiasRule,
    benign: np.ndarray | None = None,
) -> dict[str, Any]:
    """False-positive and flagged rates per group, and the groups that fail ``rule``.

    Args:
        flagged: ``[n]`` bool, the model flags the account.
        fraud: ``[n]`` bool, the account is fraud.
        groups: ``[n]`` rows, one column per grouping attribute (:func:`account_groups`).
        rule: the rule.
        benign: ``[n]`` bool, the account is known to be benign (the FPR's denominator); None: every account
            that is not ``fraud``. Accounts neither fraud nor benign count in flagged rates only.

    Returns:
        ``{"rule", "accounts", "benign", "overall": {fpr, flagged_rate, false_positives, flagged},
        "groups": {attribute: [{group, accounts, benign, false_positives, flagged, fpr, fpr_lower,
        fpr_ratio, flagged_rate, flagged_rate_ratio, judged, failed}]}, "failures": [the failed rows, each
        with its attribute], "passed"}``.
    """
    from fairlearn.metrics import MetricFrame

    flagged = np.asarray(flagged, dtype=bool)
    fraud = np.asarray(fraud, dtype=bool)
    known_benign = ~fraud if benign is None else np.asarray(benign, dtype=bool) & ~fraud
    if flagged.shape != fraud.shape or known_benign.shape != fraud.shape or len(groups) != len(flagged):
        raise ValueError(f"flagged {flagged.shape}, fraud {fraud.shape} and groups ({len(groups)}) differ in length")
    n_benign = int(known_benign.sum())
    fp = int((flagged & known_benign).sum())
    overall_fpr = fp / n_benign if n_benign else 0.0
    overall_flagged = float(flagged.mean()) if len(flagged) else 0.0
    limit = rule.max_fpr_ratio * overall_fpr
    # y_true for MetricFrame: 1 fraud, 0 benign, -1 neither (counted in flagged rates only).
    truth = np.where(fraud, 1, np.where(known_benign, 0, -1))
    report: dict[str, Any] = {
        "rule": asdict(rule),
        "accounts": len(flagged),
        "benign": n_benign,
        "overall": {
            "fpr": overall_fpr,
            "flagged_rate": overall_flagged,
            "false_positives": fp,
            "flagged": int(flagged.sum()),
        },
        "groups": {},
        "failures": [],
    }
    metrics = {"accounts": lambda t, p: len(t), "benign": _benign, "false_positives": _false_positives}
    metrics["flagged"] = _flagged
    frames: dict[str, pd.DataFrame] = {}
    for attribute in groups.columns:
        if len(flagged):
            frames[str(attribute)] = MetricFrame(
                metrics=metrics,
                y_true=truth,
                y_pred=flagged.astype(int),
                sensitive_features=groups[attribute].astype(str).rename(attribute),
            ).by_group
    judged_groups = sum(
        int(((f["benign"] >= rule.min_benign) & (f.index.astype(str) != UNKNOWN_GROUP)).sum()) for f in frames.values()
    )
    z = rule.z(judged_groups)
    report["judged_groups"], report["z"] = judged_groups, z
    for attribute in groups.columns:
        rows: list[dict[str, Any]] = []
        frame = frames.get(str(attribute), pd.DataFrame())
        for group, m in frame.iterrows():
            n_benign, n_fp, n = int(m["benign"]), int(m["false_positives"]), int(m["accounts"])
            fpr = n_fp / n_benign if n_benign else math.nan
            lower = wilson_lower(n_fp, n_benign, z)
            judged = n_benign >= rule.min_benign and str(group) != UNKNOWN_GROUP
            flagged_rate = int(m["flagged"]) / n if n else math.nan
            row = {
                "group": str(group),
                "accounts": n,
                "benign": n_benign,
                "false_positives": n_fp,
                "flagged": int(m["flagged"]),
                "fpr": fpr,
                "fpr_lower": lower,
                "fpr_ratio": _ratio(fpr, overall_fpr) if n_benign else math.nan,
                "flagged_rate": flagged_rate,
                "flagged_rate_ratio": _ratio(flagged_rate, overall_flagged) if n else math.nan,
                "judged": judged,
                "failed": bool(judged and lower > limit),
            }
            rows.append(row)
            if row["failed"]:
                report["failures"].append({"attribute": attribute, **row})
        rows.sort(key=lambda r: (-int(r["benign"]), str(r["group"])))
        report["groups"][attribute] = rows
    report["failures"].sort(key=lambda r: -float(r["fpr_lower"]))
    report["passed"] = not report["failures"]
    return report


def worst_group(report: dict[str, Any]) -> dict[str, Any] | None:
    """The judged group with the highest FPR ratio (with its ``attribute``), None when none is judged."""
    judged = [{"attribute": a, **r} for a, rows in report["groups"].items() for r in rows if r["judged"]]
    return max(judged, key=lambda r: (r["fpr_ratio"], r["benign"]), default=None)


def failure_reason(row: dict[str, Any], overall_fpr: float, rule: BiasRule) -> str:
    """One readable line for a failed group: which group, which metric, how far over."""
    return (
        f"bias: false-positive rate of {row['attribute']}={row['group']} is {100 * row['fpr']:.2f} % "
        f"({row['false_positives']} of {row['benign']} benign accounts flagged; lower confidence bound "
        f"{100 * row['fpr_lower']:.2f} %), above {rule.max_fpr_ratio:g} × the overall "
        f"{100 * overall_fpr:.2f} % = {100 * rule.max_fpr_ratio * overall_fpr:.2f} %"
    )
