"""The gate's pieces on hand-made inputs: the bias rule (a big group over the bound fails, a small noisy one does
not, missing attributes are never judged), account-age buckets, the report's summary and MLflow metrics, the
rules' argument checks, and the shadow comparison's figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gnn.bias import BiasRule, age_bucket, bias_report, failure_reason, worst_group
from gnn.gate import GateReport, GateRules
from gnn.thresholds import wilson_lower
from graph import schema as s
from serving.shadow import DISAGREEMENTS_FILE, compare, erase_from_challenger, load_challenger, save_challenger


def _accounts(groups: dict[str, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Benign accounts per group: ``{group: (benign, flagged)}``, plus 10 flagged fraud accounts in group A."""
    flagged, fraud, country = [], [], []
    for group, (benign, fp) in groups.items():
        flagged += [True] * fp + [False] * (benign - fp)
        fraud += [False] * benign
        country += [group] * benign
    flagged += [True] * 10
    fraud += [True] * 10
    country += ["A"] * 10
    return np.array(flagged), np.array(fraud), pd.DataFrame({"country": country})


def test_a_big_group_over_the_bound_fails_naming_the_group_and_the_metric():
    flagged, fraud, groups = _accounts({"A": (2_000, 10), "B": (400, 20)})  # FPR 0.5 % vs 5 %
    report = bias_report(flagged, fraud, groups, BiasRule())
    assert not report["passed"]
    assert report["overall"]["fpr"] == pytest.approx(30 / 2_400)
    (failure,) = report["failures"]
    assert (failure["attribute"], failure["group"], failure["false_positives"]) == ("country", "B", 20)
    assert failure["fpr_lower"] > 1.25 * report["overall"]["fpr"]
    b = next(r for r in report["groups"]["country"] if r["group"] == "B")
    assert b["fpr_ratio"] == pytest.approx(0.05 / (30 / 2_400))
    assert b["flagged_rate_ratio"] == pytest.approx((20 / 400) / (40 / 2_410))
    reason = failure_reason(failure, report["overall"]["fpr"], BiasRule())
    assert reason.startswith("bias: false-positive rate of country=B is 5.00 %") and "20 of 400" in reason
    assert worst_group(report)["group"] == "B"


def test_small_or_noisy_groups_and_missing_attributes_do_not_fail():
    # C: 2 of 60 (3.3 %, lower bound ~1.1 %) against an overall ~1 %: over 1.25x as a point, not as a bound.
    flagged, fraud, groups = _accounts({"A": (3_000, 28), "C": (60, 2), "D": (20, 5), "unknown": (300, 30)})
    report = bias_report(flagged, fraud, groups, BiasRule())
    rows = {r["group"]: r for r in report["groups"]["country"]}
    assert rows["C"]["fpr_ratio"] > 1.25 and rows["C"]["judged"] and not rows["C"]["failed"]
    assert not rows["D"]["judged"] and not rows["D"]["failed"]  # 20 benign accounts: reported, never judged
    assert not rows["unknown"]["judged"]  # the group without the attribute
    assert report["passed"]
    strict = bias_report(flagged, fraud, groups, BiasRule(alpha=0.99, min_benign=10))  # no confidence margin
    assert {f["group"] for f in strict["failures"]} == {"C", "D"}


def test_a_model_that_flags_no_benign_account_passes_whatever_the_group_sizes():
    # Every FPR is 0: the Wilson bound of 0 of n is 0, not the 3e-18 its formula leaves for some n (the demo's
    # gate failed on "0.00 % of 146 accounts, above 1.25 x the overall 0.00 %").
    flagged, fraud, groups = _accounts({"A": (2_000, 0), "B": (146, 0), "C": (65, 0), "D": (877, 0)})
    report = bias_report(flagged, fraud, groups, BiasRule())
    assert report["overall"]["fpr"] == 0.0 and report["passed"] and not report["failures"]
    assert all(r["fpr_lower"] == 0.0 for r in report["groups"]["country"])
    assert all(wilson_lower(0, n, z) == 0.0 for n in range(1, 3_000) for z in (1.645, 2.2, 2.9))


def test_age_buckets():
    days = np.array([0, 29.9, 30, 89, 90, 200, 364.9, 365, 2_000, np.nan])
    assert list(age_bucket(days)) == [
        "<30d",
        "<30d",
        "30-90d",
        "30-90d",
        "90-180d",
        "180-365d",
        "180-365d",
        ">=365d",
        ">=365d",
        "unknown",
    ]


def test_rules_check_their_arguments():
    with pytest.raises(ValueError, match="max_fpr_ratio"):
        BiasRule(max_fpr_ratio=0.9)
    with pytest.raises(ValueError, match="min_benign"):
        BiasRule(min_benign=0)
    with pytest.raises(ValueError, match="max_ece"):
        GateRules(max_ece=0)
    with pytest.raises(ValueError, match="auprc_tolerance"):
        GateRules(auprc_tolerance=-0.1)


def test_report_summary_and_metrics_round_trip():
    flagged, fraud, groups = _accounts({"A": (2_000, 10), "B": (400, 20)})
    bias = bias_report(flagged, fraud, groups, BiasRule())
    report = GateReport(
        model_version="ringwatch-risk/2",
        champion_version="ringwatch-risk/1",
        passed=False,
        reasons=["collusion: AUPRC 0.100 is more than 0.05 below the champion's 0.300", "bias: …"],
        labels="truth file",
        evaluated_accounts=2_410,
        threats={"collusion": {"auprc": 0.1, "ece": 0.02, "champion_auprc": 0.3}},
        bias=bias,
        rules=GateRules().as_dict(),
    )
    assert report.summary().startswith("failed: collusion: AUPRC") and report.summary().endswith("(and 1 more)")
    metrics = report.metrics()
    assert metrics["gate_passed"] == 0.0 and metrics["gate_auprc_collusion"] == 0.1
    assert metrics["gate_fpr_worst_ratio"] == pytest.approx(0.05 / (30 / 2_400))
    assert GateReport.from_dict(report.as_dict()) == report


def test_shadow_comparison_counts_overlap_disagreements_and_precision_on_them():
    ids = [f"acc_{i}" for i in range(6)]
    champion = pd.DataFrame(
        {
            "account_id": ids,
            "score": [0.9, 0.8, 0.7, 0.1, 0.2, 0.05],
            "label": [s.COLLUSION, s.COLLUSION, s.BOT_FARM, s.CLEAR, s.CLEAR, s.CLEAR],
        }
    )
    challenger = pd.DataFrame(
        {
            "account_id": ids,
            "score": [0.95, 0.1, 0.75, 0.85, 0.9, 0.01],
            "label": [s.COLLUSION, s.CLEAR, s.PROMO_ABUSE, s.BOT_FARM, s.BOT_FARM, s.CLEAR],
        }
    )
    # acc_1 flagged by the champion only (a confirmed fraud); acc_3, acc_4 by the challenger only (one benign,
    # one without evidence).
    out = compare(champion, challenger, {"acc_1": True, "acc_3": False, "acc_0": True})
    assert (out["champion_flagged"], out["challenger_flagged"], out["both_flagged"]) == (3, 4, 2)
    assert out["flagged_overlap"] == pytest.approx(2 / 5)
    assert out["disagreements"] == 3 and out["label_disagreements"] == 4
    assert out["champion_precision_on_disagreements"] == 1.0 and out["champion_judged"] == 1
    assert out["challenger_precision_on_disagreements"] == 0.0 and out["challenger_judged"] == 1
    assert out["score_correlation"] == pytest.approx(np.corrcoef(champion["score"], challenger["score"])[0, 1])
    empty = compare(champion.iloc[:0], challenger.iloc[:0], {})
    assert math.isnan(empty["flagged_overlap"]) and math.isnan(empty["challenger_precision_on_disagreements"])


def test_erasure_blanks_the_challengers_plan_row_and_its_disagreement(tmp_path):
    frame = pd.DataFrame(
        {
            "account_id": ["acc_0", "acc_1"],
            **{t: [0.9, 0.1] for t in s.THREATS},
            "score": [0.9, 0.1],
            "label": [s.COLLUSION, s.CLEAR],
            "disagrees": [True, False],
        }
    )
    save_challenger(tmp_path, frame, "ringwatch-risk/2")
    pd.DataFrame({"account_id": ["acc_0"], "champion_label": [s.CLEAR], "challenger_label": [s.COLLUSION]}).to_csv(
        tmp_path / DISAGREEMENTS_FILE, index=False
    )
    assert erase_from_challenger(tmp_path, "acc_0")
    saved, version = load_challenger(tmp_path)
    assert version == "ringwatch-risk/2" and len(saved) == 2  # the row stays, empty: batches keep their shape
    assert saved["account_id"].isna().tolist() == [True, False] and math.isnan(saved.loc[0, "score"])
    assert saved["disagrees"].tolist() == [False, False]
    assert pd.read_csv(tmp_path / DISAGREEMENTS_FILE).empty
    assert not erase_from_challenger(tmp_path, "acc_0")  # erasing again finds nothing
