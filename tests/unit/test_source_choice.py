"""The per-threat choice of source (gnn.source_choice) on hand-made validation scores."""

from __future__ import annotations

import numpy as np

from gnn.source_choice import MIN_CHOICE_POSITIVES, SourceChoice


def _choice(positives: int) -> str:
    """A GNN with a weak signal and a baseline that happens to rank the validation positives first: on a handful
    of positives that luck is all the AUPRC sees."""
    rng = np.random.default_rng(0)
    n = 4_000
    y = np.zeros(n, dtype=bool)
    y[rng.choice(n, positives, replace=False)] = True
    gnn = rng.normal(np.where(y, 1.0, 0.0), 1.0)
    baseline = rng.normal(size=n) + np.where(y, 10.0, 0.0)  # perfect on these positives
    choice = SourceChoice(("collusion",))
    val = np.arange(n)
    choice._calibrate_and_choose(
        {"gnn": gnn[:, None], "baseline": baseline[:, None]}, y[:, None].astype(float), val, np.array([], int)
    )
    assert choice.validation["collusion"]["auprc"]["baseline"] > choice.validation["collusion"]["auprc"]["gnn"]
    return choice.choice["collusion"]


def test_too_few_validation_positives_ship_the_ensemble_not_the_luckiest_source():
    assert _choice(3) == "ensemble"
    assert _choice(MIN_CHOICE_POSITIVES - 1) == "ensemble"


def test_enough_validation_positives_ship_the_best_source():
    assert _choice(MIN_CHOICE_POSITIVES) == "baseline"
    assert _choice(30) == "baseline"
