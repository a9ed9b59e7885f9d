"""Threshold policies and the correction for partial labels (gnn.thresholds), on simulated score sets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from gnn.thresholds import (
    PUCalibrator,
    ThresholdPolicy,
    benign_weights,
    budget_flags,
    fpr_level,
    labels_at,
    wilson_lower,
)
from graph import schema as s


def _exchange(
    n: int = 40_000,
    prevalence: float = 0.05,
    label_rate: float = 0.3,
    benign_rate: float = 0.05,
    seed: int = 0,
    gap: float = 3.5,
) -> dict[str, np.ndarray]:
    """Accounts with a true class, a one-feature signal (fraud shifted by ``gap`` standard deviations: AUROC
    0.99, like the project's models on a good day), partial fraud labels and a sample of known benign."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < prevalence
    x = rng.normal(np.where(fraud, gap, 0.0), 1.0)
    p_true = 1 / (1 + (1 - prevalence) / prevalence * np.exp(-(gap * x - gap**2 / 2)))  # Bayes posterior
    labelled = fraud & (rng.random(n) < label_rate)
    known_benign = ~fraud & (rng.random(n) < benign_rate)
    return {"fraud": fraud, "x": x, "p_true": p_true, "labelled": labelled, "known_benign": known_benign}


def _labelled_probability(ex: dict[str, np.ndarray]) -> np.ndarray:
    """g(x) = P(labelled | x): Platt scaling with every unlabelled account counted as a negative."""
    lr = LogisticRegression(C=1e4).fit(ex["x"].reshape(-1, 1), ex["labelled"].astype(int))
    return lr.predict_proba(ex["x"].reshape(-1, 1))[:, 1]


def test_pu_correction_brings_the_calibration_closer_to_the_truth():
    ex = _exchange()
    g = _labelled_probability(ex)  # what Platt scaling against the partial labels says
    pu = PUCalibrator.fit(ex["labelled"], ex["x"])
    assert abs(pu.frequency - 0.3) < 0.05  # the label frequency is recovered
    p = pu(ex["x"])
    top = g >= np.quantile(g, 0.9)  # where decisions are made
    err_corrected = np.abs(p - ex["p_true"])[top].mean()
    err_uncorrected = np.abs(g - ex["p_true"])[top].mean()
    assert err_corrected < 0.25 * err_uncorrected
    # the probabilities of fraud sum to about the number of fraud accounts; labelled ones to 30 % of it
    assert abs(p.sum() / ex["fraud"].sum() - 1) < 0.1 and abs(g.sum() / ex["fraud"].sum() - 0.3) < 0.05
    assert np.allclose(pu.labelled(ex["x"]), pu.frequency * p)


@pytest.mark.parametrize("gap", [0.8, 1.5])
def test_fpr_target_holds_for_weak_models_too(gap):
    # A signal too weak to show where fraud is certain: the label frequency is not identified, the fit stays
    # uncorrected (c = 1: the cautious side), and the false-positive target holds.
    ex = _exchange(gap=gap)
    pu = PUCalibrator.fit(ex["labelled"], ex["x"])
    assert pu.frequency > 0.9
    p = pu(ex["x"])[:, None]
    unlabelled = ~ex["labelled"] & ~ex["known_benign"]
    level = fpr_level(p[:, 0], benign_weights(p, ex["known_benign"], unlabelled), ex["known_benign"], 0.01)
    flagged = p[:, 0] >= level
    assert (flagged & ~ex["fraud"]).sum() / (~ex["fraud"]).sum() <= 0.013
    identity = PUCalibrator().state()
    assert PUCalibrator.fit(np.zeros(5, bool), np.arange(5.0)).state() == identity
    assert PUCalibrator.fit(ex["labelled"] & (np.cumsum(ex["labelled"]) <= 10), ex["x"]).state() == identity


def _probabilities(ex: dict[str, np.ndarray]) -> np.ndarray:
    return PUCalibrator.fit(ex["labelled"], ex["x"])(ex["x"])[:, None]


@pytest.mark.parametrize("target", [0.002, 0.01, 0.03])
def test_fpr_target_is_met(target):
    ex = _exchange(seed=1)
    p = _probabilities(ex)
    unlabelled = ~ex["labelled"] & ~ex["known_benign"]
    level = fpr_level(p[:, 0], benign_weights(p, ex["known_benign"], unlabelled), ex["known_benign"], target)
    flagged = p[:, 0] >= level
    true_fpr = (flagged & ~ex["fraud"]).sum() / (~ex["fraud"]).sum()
    assert true_fpr <= target * 1.25 + 1e-4
    assert true_fpr >= target * 0.5  # and the target is used, not wasted
    weight = benign_weights(p, ex["known_benign"], unlabelled)  # the estimate the level was chosen on
    est = (weight * flagged).sum() / weight.sum()
    assert abs(est - true_fpr) <= 0.3 * target + 1e-4


def test_known_benign_accounts_overrule_an_optimistic_estimate():
    # Inflated probabilities (as a label frequency underestimated 10x would give) make the PU estimate think
    # flagged accounts are fraud; the known-benign accounts flagged at that level show otherwise and raise it.
    ex = _exchange(seed=2)
    p = np.minimum(1.0, _labelled_probability(ex) / 0.03)[:, None]
    unlabelled = ~ex["labelled"] & ~ex["known_benign"]
    kb = ex["known_benign"]
    weight = benign_weights(p, kb, unlabelled)
    naive = fpr_level(p[:, 0], weight, np.zeros_like(kb), 0.01)  # the PU estimate alone
    level = fpr_level(p[:, 0], weight, kb, 0.01)
    flagged = p[:, 0] >= level
    true_fpr = (flagged & ~ex["fraud"]).sum() / (~ex["fraud"]).sum()
    assert level > naive
    assert (p[:, 0] >= naive)[~ex["fraud"]].mean() > 0.04  # the PU estimate alone flags 4 %+ of benign
    assert wilson_lower(int((flagged & kb).sum()), int(kb.sum())) <= 0.01 and true_fpr <= 0.03
    assert fpr_level(np.zeros(0), np.zeros(0), np.zeros(0, bool), 0.01) > 1  # nothing to flag


@pytest.mark.parametrize("budget", [0, 1, 7, 100, 1000, 1500])
def test_budget_is_respected_exactly(budget):
    rng = np.random.default_rng(3)
    margin = np.round(rng.random(1000), 2)  # many ties
    flags = budget_flags(margin, budget)
    assert flags.sum() == min(budget, 1000)
    if 0 < budget < 1000:
        assert margin[flags].min() >= margin[~flags].max()
    with pytest.raises(ValueError, match="budget"):
        budget_flags(margin, -1)


def test_policies_check_their_arguments_and_labels_follow_the_widest_margin():
    assert ThresholdPolicy.from_options(None, None) is None
    assert ThresholdPolicy.from_options(0.01, None) == ThresholdPolicy(kind="fpr", fpr_target=0.01)
    assert ThresholdPolicy.from_options(None, 50).describe() == "review budget 50 accounts"
    for bad in ({"fpr_target": 0.0}, {"fpr_target": 1.0}, {"kind": "budget", "budget": -1}, {"kind": "top"}):
        with pytest.raises(ValueError):
            ThresholdPolicy(**bad)
    with pytest.raises(ValueError, match="not both"):
        ThresholdPolicy.from_options(0.01, 5)
    scores = np.array([[0.2, 0.5, 0.1], [0.05, 0.05, 0.05], [0.4, 0.0, 0.9]])
    thresholds = {s.COLLUSION: 0.1, s.PROMO_ABUSE: 0.4, s.BOT_FARM: 0.3}
    assert labels_at(scores, thresholds).tolist() == [s.COLLUSION, s.CLEAR, s.COLLUSION]  # 4.0 x beats 3.0 x


def _rings_with_known_members(seed: int = 0, informative: bool = True) -> dict[str, np.ndarray]:
    """A weak one-feature signal (AUROC about 0.85), fraud in rings of 8 of which 30 % carry a label, and each
    account's known-fraud ties: the labelled members of its ring, other than itself; benign accounts are tied to
    a labelled one now and then (a household). ``informative=False`` gives every account a random count."""
    rng = np.random.default_rng(seed)
    n, ring_size, n_rings = 20_000, 8, 60
    ring = np.full(n, -1)
    ring[: ring_size * n_rings] = np.repeat(np.arange(n_rings), ring_size)
    fraud = ring >= 0
    x = rng.normal(np.where(fraud, 1.5, 0.0), 1.0)
    labelled = fraud & (rng.random(n) < 0.3)
    per_ring = np.bincount(ring[labelled], minlength=n_rings)
    ties = np.where(fraud, per_ring[np.maximum(ring, 0)] - labelled, rng.random(n) < 0.02).astype(float)
    if not informative:
        ties = rng.permutation(ties)
    return {"fraud": fraud, "x": x, "labelled": labelled, "ties": ties}


def test_known_fraud_ties_are_weighed_when_they_tell_fraud_apart():
    from sklearn.metrics import average_precision_score

    ex = _rings_with_known_members()
    with_ties = PUCalibrator.fit(ex["labelled"], ex["x"], ex["ties"])
    without = PUCalibrator.fit(ex["labelled"], ex["x"])
    assert with_ties.ties_coef > 1.0 and without.ties_coef == 0.0
    unlabelled = ~ex["labelled"]  # what the model has to find
    ap_with = average_precision_score(ex["fraud"][unlabelled], with_ties(ex["x"], ex["ties"])[unlabelled])
    ap_without = average_precision_score(ex["fraud"][unlabelled], without(ex["x"])[unlabelled])
    assert ap_with > ap_without + 0.2
    with pytest.raises(ValueError, match="known-fraud ties"):
        with_ties(ex["x"])  # a calibration that weighs them cannot score without them
    restored = PUCalibrator(**with_ties.state())
    assert np.array_equal(restored(ex["x"], ex["ties"]), with_ties(ex["x"], ex["ties"]))


def test_known_fraud_ties_that_say_nothing_get_no_weight_and_few_labels_fit_nothing():
    ex = _rings_with_known_members(informative=False)
    # about 6 when they are informative (above); 0.0, 0.6 and 0.0 on seeds 0-2 when shuffled
    assert PUCalibrator.fit(ex["labelled"], ex["x"], ex["ties"]).ties_coef < 1.0
    few = ex["labelled"] & (np.cumsum(ex["labelled"]) <= 4)
    assert PUCalibrator.fit(few, ex["x"], ex["ties"]).state() == PUCalibrator().state()
