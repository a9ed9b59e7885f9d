"""``ringwatch train``: one training run from a snapshot — GNN (under Ray Train, or plain PyTorch), the
baseline, calibration, per-threat choice, evaluation on the test split, tracking and promotion.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graph.settings import Settings
from gnn.estimator import RiskModel
from gnn.evaluation import evaluate_model
from gnn.graph_data import RiskGraph
from gnn.ray_train import RayConfig, fit_with_ray
from gnn.split import TimeSplit
from gnn.tracking import log_training_run
from gnn.train import EpochResult, TrainConfig, fit_gnn


def main(settings: Settings, graph: RiskGraph, snapshot_dir: Path, config: TrainConfig,
         ray: RayConfig | None, on_epoch=None, fail_once_at_epoch: int | None = None,
         track: bool = True) -> dict[str, Any]:
    """Train, evaluate on the test split, save, track and (when better) promote a model.

    Args:
        settings: where the local MLflow store lives.
        graph: the graph read from ``snapshot_dir``.
        snapshot_dir: the snapshot the graph came from (Ray workers read it themselves).
        config: GNN hyper-parameters.
        ray: scaling for Ray Train; None trains in this process with plain PyTorch.
        on_epoch: called with each epoch's result (plain runs only; Ray reports through its own log).
        fail_once_at_epoch: testing aid — the first Ray attempt fails at this epoch, to prove resume.
        track: log to MLflow and the registry.

    Returns:
        A summary: run name, model folder, validation and test metrics, tracking outcome, timings.
    """
    started = time.perf_counter()
    run_name = f"train-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    split = TimeSplit.by_quantiles(graph)
    model = RiskModel(config)
    if ray is None:
        result, td = fit_gnn(graph, split, config, on_epoch)
        state, history = result.state_dict, result.history
    else:
        state, history_dicts = fit_with_ray(snapshot_dir, split, config, ray, run_name, fail_once_at_epoch)
        history = [EpochResult(**h) for h in history_dicts]
        td = None
    gnn_seconds = time.perf_counter() - started
    model.finish(graph, split, state, td, history)
    model_dir = model.save(settings.data_dir.resolve() / "models" / run_name)
    test = evaluate_model(model, graph, truth=None, model_version=run_name)
    val_mean = max((h.val_auprc_mean for h in history), default=float("nan"))
    summary: dict[str, Any] = {
        "run": run_name,
        "model_dir": str(model_dir),
        "trainer": "ray" if ray else "plain",
        "epochs": len(history),
        "best_val_auprc_mean": val_mean,
        "choice": model.choice,
        "validation": model.validation,
        "test": test,
        "seconds": {"gnn": round(gnn_seconds, 2), "total": round(time.perf_counter() - started, 2)},
        "snapshot": str(snapshot_dir),
        "content_hash": graph.content_hash,
    }
    if track:
        chosen_val = _mean([model.validation[t]["auprc"][model.choice[t]] for t in model.choice])
        logged = log_training_run(
            settings, model_dir,
            params={**config.as_dict(), "trainer": summary["trainer"], "split": split.as_dict(),
                    "num_workers": ray.num_workers if ray else 1},
            history=[h.__dict__ for h in history],
            metrics={"val_auprc_mean": chosen_val,
                     **{f"test_auprc_{t}": m["auprc"] for t, m in test["threats"].items()},
                     **{f"test_auroc_{t}": m["auroc"] for t, m in test["threats"].items()}},
            tags={"snapshot_hash": graph.content_hash, "snapshot": str(snapshot_dir), "run": run_name},
            run_name=run_name,
        )
        summary["tracking"] = logged.__dict__
        model_version = f"ringwatch-risk/{logged.version}"
        summary["model_version"] = model_version
    return summary


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return float(sum(vals) / len(vals)) if vals else float("nan")
