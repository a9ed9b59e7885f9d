"""Evaluation of a model: per threat and overall, on the test split or against a truth file.

Without a truth file the evaluation uses the test split (the newest accounts) and the graph's known labels,
counting unlabelled accounts as negatives (so precision is a lower bound). With ``truth.csv`` from
``ringwatch generate`` it scores every account not used in training — those created after the training
period — against the full truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gnn.graph_data import RiskGraph
from gnn.metrics import calibration, threat_metrics
from graph.errors import InputContractError
from graph.schema import THREATS


def truth_targets(graph: RiskGraph, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(targets [N, n_threats], known [N])`` from a truth frame (account_id, label)."""
    missing = {"account_id", "label"} - set(truth.columns)
    if missing:
        raise InputContractError(f"truth file lacks column(s) {sorted(missing)}")
    idx = graph.account_index(truth["account_id"].astype(str))
    found = idx >= 0
    targets = np.zeros((graph.num_accounts, len(THREATS)), dtype=np.float32)
    known = np.zeros(graph.num_accounts, dtype=bool)
    known[idx[found]] = True
    labels = truth["label"].to_numpy()[found]
    for i, threat in enumerate(THREATS):
        targets[idx[found][labels == threat], i] = 1.0
    return targets, known


def evaluate_scores(
    scores: np.ndarray, thresholds: dict[str, float], evaluated: np.ndarray, targets: np.ndarray, model_version: str
) -> dict[str, Any]:
    """Metrics per threat and overall (any threat: the highest score vs any fraud label)."""
    out: dict[str, Any] = {"threats": {}, "evaluated_accounts": int(evaluated.sum()), "model_version": model_version}
    for i, threat in enumerate(THREATS):
        y = targets[evaluated, i].astype(bool)
        out["threats"][threat] = threat_metrics(y, scores[evaluated, i], thresholds[threat])
        out["threats"][threat]["calibration"] = calibration(y, scores[evaluated, i])
    any_y = targets[evaluated].max(axis=1).astype(bool)
    margin = scores / np.maximum(np.array([thresholds[t] for t in THREATS]), 1e-9)
    overall: dict[str, Any] = dict(threat_metrics(any_y, scores[evaluated].max(axis=1), threshold=0.0))
    flagged = margin[evaluated].max(axis=1) >= 1.0
    overall.update(
        {
            "threshold": None,
            "flagged": int(flagged.sum()),
            "precision": float((flagged & any_y).sum() / flagged.sum()) if flagged.any() else float("nan"),
            "recall": float((flagged & any_y).sum() / any_y.sum()) if any_y.any() else float("nan"),
            "fpr": float((flagged & ~any_y).sum() / (~any_y).sum()) if (~any_y).any() else float("nan"),
        }
    )
    out["overall"] = overall
    return out


def evaluation_scope(model, graph: RiskGraph, truth: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(targets, evaluated mask, description)``: see the module docstring."""
    masks = model.split.masks(graph)
    if truth is None:
        return graph.threat_targets(), masks["test"], "test split, known labels (unlabelled count as negatives)"
    targets, known = truth_targets(graph, truth)
    evaluated = (masks["val"] | masks["test"]) & known
    return targets, evaluated, "every account created after the training period, against the truth file"


def evaluate_model(
    model, graph: RiskGraph, truth: pd.DataFrame | None, model_version: str, scores: np.ndarray | None = None
) -> dict[str, Any]:
    """Evaluate ``model`` (a :class:`gnn.estimator.RiskModel`) on ``graph``; see the module docstring."""
    scores = model.decision_function(graph) if scores is None else scores
    targets, evaluated, scope = evaluation_scope(model, graph, truth)
    result = evaluate_scores(scores, model.thresholds, evaluated, targets, model_version)
    result["scope"] = scope
    result["choice"] = dict(model.choice)
    return result


def save_report(
    result: dict[str, Any], scores: np.ndarray, targets: np.ndarray, evaluated: np.ndarray, out_dir: Path
) -> list[Path]:
    """Write ``metrics.json`` and PR-curve / reliability pictures into ``out_dir``."""
    from matplotlib.figure import Figure  # a Figure of its own: no pyplot state, no process-wide backend
    from sklearn.metrics import precision_recall_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "metrics.json"]
    files[0].write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    for i, threat in enumerate(THREATS):
        y = targets[evaluated, i].astype(bool)
        if not y.any():
            continue
        p, r, _ = precision_recall_curve(y, scores[evaluated, i])
        axes[0].plot(r, p, label=f"{threat} (AUPRC {result['threats'][threat]['auprc']:.2f}, base {y.mean():.3f})")
        bins = result["threats"][threat]["calibration"]["bins"]
        axes[1].plot([b["mean_score"] for b in bins], [b["positive_rate"] for b in bins], "o-", label=threat)
    axes[0].set(xlabel="recall", ylabel="precision", title="precision–recall", xlim=(0, 1), ylim=(0, 1.02))
    axes[1].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[1].set(xlabel="mean score", ylabel="positive rate", title="calibration", xlim=(0, 1), ylim=(0, 1))
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['model_version']} — {result['evaluated_accounts']:,} accounts")
    fig.tight_layout()
    files.append(out_dir / "pr_curves.png")
    fig.savefig(files[-1], dpi=110)
    return files


def evaluate_saved_model(
    model, model_version: str, graph: RiskGraph, truth: pd.DataFrame | None, out_dir: Path | None = None
) -> dict[str, Any]:
    """The offline evaluation job (``ringwatch evaluate --model``): score ``graph`` with ``model`` (a
    :class:`gnn.estimator.RiskModel`), evaluate (see the module docstring), and with ``out_dir`` write
    ``metrics.json`` and the pictures there (listed under ``files``)."""
    scores = model.decision_function(graph)
    result = evaluate_model(model, graph, truth, model_version, scores=scores)
    if out_dir is not None:
        targets, evaluated, _ = evaluation_scope(model, graph, truth)
        result["files"] = [str(p) for p in save_report(result, scores, targets, evaluated, out_dir)]
    return result
