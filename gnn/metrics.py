"""Quality metrics for ranked risk scores: AUROC, AUPRC, Recall@K, threshold choice and calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score


def recall_at_k(y: np.ndarray, score: np.ndarray, k: int | None = None) -> float:
    """Share of positives among the top ``k`` scores; ``k`` defaults to the number of positives."""
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    k = positives if k is None else k
    top = np.argsort(-score, kind="stable")[:k]
    return float(y[top].sum() / positives)


def threat_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC, AUPRC, Recall@K (K = positives), precision, recall and FPR at ``threshold``; base rate."""
    y = y.astype(bool)
    out: dict[str, float] = {
        "positives": int(y.sum()),
        "negatives": int((~y).sum()),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
    }
    if y.any() and (~y).any():
        out["auroc"] = float(roc_auc_score(y, score))
        out["auprc"] = float(average_precision_score(y, score))
    else:
        out["auroc"] = out["auprc"] = float("nan")
    out["recall_at_k"] = recall_at_k(y, score)
    flagged = score >= threshold
    out["threshold"] = float(threshold)
    out["flagged"] = int(flagged.sum())
    out["precision"] = float((flagged & y).sum() / flagged.sum()) if flagged.any() else float("nan")
    out["recall"] = float((flagged & y).sum() / y.sum()) if y.any() else float("nan")
    out["fpr"] = float((flagged & ~y).sum() / (~y).sum()) if (~y).any() else float("nan")
    return out


class PlattCalibrator:
    """Maps raw scores to probabilities with a one-feature logistic regression fitted on validation."""

    def __init__(self, coef: float = 1.0, intercept: float = 0.0) -> None:
        self.coef, self.intercept = coef, intercept

    @classmethod
    def fit(cls, y: np.ndarray, raw: np.ndarray) -> PlattCalibrator:
        if not y.any() or y.all():
            return cls()
        lr = LogisticRegression(C=1e4).fit(raw.reshape(-1, 1), y.astype(int))
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return expit(self.coef * raw + self.intercept)  # the logistic without exp's overflow on big margins

    def state(self) -> dict[str, float]:
        return {"coef": self.coef, "intercept": self.intercept}


def calibration(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability table (equal-width bins) and expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        mean_p, rate = float(prob[m].mean()), float(y[m].mean())
        ece += m.mean() * abs(mean_p - rate)
        table.append(
            {
                "bin": [float(edges[b]), float(edges[b + 1])],
                "n": int(m.sum()),
                "mean_score": mean_p,
                "positive_rate": rate,
            }
        )
    return {"ece": float(ece), "bins": table}
