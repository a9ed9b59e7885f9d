"""The training job (``ringwatch train``): one training run from a snapshot — GNN (under Ray Train, or plain
PyTorch), the baseline, calibration, per-threat choice, evaluation on the test split, tracking, and promotion
through the validation gate (:mod:`gnn.gate`).

:func:`main` takes a graph already read; :func:`train_on_snapshot` reads the snapshot folder first. Both return
a :class:`TrainingSummary` and print nothing (epochs are reported to ``on_epoch`` and the log).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gnn.estimator import RiskModel
from gnn.evaluation import evaluate_model
from gnn.gate import GateReport, validate_model
from gnn.graph_data import RiskGraph
from gnn.ray_train import RayConfig, fit_with_ray
from gnn.runtime import release_memory, release_ray
from gnn.snapshot import read_snapshot
from gnn.split import TimeSplit
from gnn.tracking import REGISTERED_MODEL, download_version, log_training_run
from gnn.train import EpochResult, TrainConfig, fit_gnn
from graph.logs import logger
from graph.runs import new_run_id, run_scope
from graph.settings import Settings

log = logger(__name__)


@dataclass
class TrainingSummary:
    """What one training run produced.

    Attributes:
        run: the run id (``train-…``), also the model folder's name and the MLflow run name.
        model_dir: the saved model folder.
        trainer: ``ray`` or ``plain``.
        epochs: epochs run (early stopping may end sooner).
        best_val_auprc_mean: the best epoch's mean validation AUPRC of the GNN.
        choice: per threat, the shipped source (``gnn``, ``baseline`` or ``ensemble``).
        validation: per threat, validation metrics of each source.
        test: metrics on the test split (known labels).
        seconds: the steps' wall seconds: ``read_snapshot`` (when the job read the snapshot; both reads
            under Ray), ``gnn`` (the GNN's epochs, Ray's start and stop included), ``finish`` (the baseline,
            full-graph scores, calibration and per-threat choice), ``save``, ``evaluate`` (the test split),
            ``tracking`` (MLflow, the registry and the validation gate) and ``total`` (the whole run; the
            snapshot reads are in it when the job read the graph itself, under Ray).
        snapshot: the snapshot trained on; content_hash: its content hash.
        tracking: the MLflow outcome (run id, version, promoted, scores, gate), None when not tracked.
        model_version: ``ringwatch-risk/<version>`` when tracked.
        gate: the validation gate's report (:class:`gnn.gate.GateReport` as a dict) when tracked.
    """

    run: str
    model_dir: str
    trainer: str
    epochs: int
    best_val_auprc_mean: float
    choice: dict[str, str]
    validation: dict[str, Any]
    test: dict[str, Any]
    seconds: dict[str, float]
    snapshot: str
    content_hash: str
    tracking: dict[str, Any] | None = None
    model_version: str | None = None
    gate: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (``ringwatch train --json``)."""
        return asdict(self)


def train_on_snapshot(
    settings: Settings,
    snapshot_dir: Path,
    config: TrainConfig,
    ray: RayConfig | None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> TrainingSummary:
    """Read the snapshot at ``snapshot_dir`` and train on it (see :func:`main`); ``seconds`` also holds
    ``read_snapshot``.

    Under Ray the worker reads the snapshot itself, and this process needs the graph only before the epochs (the
    split) and after them (baseline, calibration, evaluation): it reads the snapshot twice rather than hold a
    second copy of the graph through the epochs (at 1M accounts, gigabytes against half a minute of reading).
    """
    if ray is not None:
        return main(settings, None, snapshot_dir, config, ray, on_epoch=on_epoch)
    started = time.perf_counter()
    graph = read_snapshot(snapshot_dir)
    read_s = time.perf_counter() - started
    summary = main(settings, graph, snapshot_dir, config, ray, on_epoch=on_epoch)
    summary.seconds = {"read_snapshot": round(read_s, 2), **summary.seconds}
    return summary


def main(
    settings: Settings,
    graph: RiskGraph | None,
    snapshot_dir: Path,
    config: TrainConfig,
    ray: RayConfig | None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    fail_once_at_epoch: int | None = None,
    track: bool = True,
    promote: bool = True,
) -> TrainingSummary:
    """Train, evaluate on the test split, save, track, and promote a model that passes the validation gate.

    Args:
        settings: where the local MLflow store lives.
        graph: the graph read from ``snapshot_dir``; None: read it here (under Ray: before the epochs for the
            split, and again after them, not held while the worker trains).
        snapshot_dir: the snapshot the graph came from (Ray workers read it themselves).
        config: GNN hyper-parameters.
        ray: scaling for Ray Train; None trains in this process with plain PyTorch.
        on_epoch: called with each epoch's result (plain runs only; Ray reports through its own log).
        fail_once_at_epoch: testing aid — the first Ray attempt fails at this epoch, to prove resume.
        track: log to MLflow and the registry.
        promote: False registers the model without promoting it (``ringwatch monitor --retrain``).

    Returns:
        The run's summary.

    Raises:
        ModelError: training failed (every Ray attempt).
        TrackingError: the tracking store or registry failed (the model is saved, never promoted).
    """
    run_name = new_run_id("train")
    with run_scope(run_name):
        return _train(
            settings, graph, snapshot_dir, config, ray, on_epoch, fail_once_at_epoch, track, run_name, promote
        )


def _train(
    settings: Settings,
    graph: RiskGraph | None,
    snapshot_dir: Path,
    config: TrainConfig,
    ray: RayConfig | None,
    on_epoch: Callable[[EpochResult], None] | None,
    fail_once_at_epoch: int | None,
    track: bool,
    run_name: str,
    promote: bool = True,
) -> TrainingSummary:
    started = time.perf_counter()
    reads: list[float] = []

    def read() -> RiskGraph:
        t = time.perf_counter()
        read_graph = read_snapshot(snapshot_dir)
        reads.append(time.perf_counter() - t)
        return read_graph

    held = graph if graph is not None else read()
    log.info(
        "training on %s (%s)",
        snapshot_dir,
        "Ray Train" if ray else "plain PyTorch",
        extra={"content_hash": held.content_hash, "epochs": config.epochs},
    )
    split = TimeSplit.by_quantiles(held)
    model = RiskModel(config)
    fitting = time.perf_counter()
    if ray is None:
        result, td = fit_gnn(held, split, config, on_epoch)
        state, history = result.state_dict, result.history
        seconds = {"gnn": time.perf_counter() - fitting}
    else:
        if graph is None:
            del held  # the worker reads its own copy; ours is read again after the epochs
            release_memory()
        state, history_dicts = fit_with_ray(snapshot_dir, split, config, ray, run_name, fail_once_at_epoch)
        release_ray()  # what follows runs here: Ray's processes would only add their memory to the finish's
        history = [EpochResult(**h) for h in history_dicts]
        td = None
        seconds = {"gnn": time.perf_counter() - fitting}
        held = graph if graph is not None else read()
    if reads:
        seconds["read_snapshot"] = sum(reads)
    graph = held
    step = time.perf_counter()
    model.finish(graph, split, state, td, history)
    seconds["finish"], step = time.perf_counter() - step, time.perf_counter()
    model_dir = model.save(settings.data_dir.resolve() / "models" / run_name)
    seconds["save"], step = time.perf_counter() - step, time.perf_counter()
    # The full-graph scores finish() computed for calibration serve the test evaluation and the validation
    # gate: one full-graph pass (GNN and baseline features) per training run, not two.
    scores = model.calibrate(model.fitted_raw) if model.fitted_raw is not None else model.decision_function(graph)
    test = evaluate_model(model, graph, truth=None, model_version=run_name, scores=scores)
    seconds["evaluate"], step = time.perf_counter() - step, time.perf_counter()
    val_mean = max((h.val_auprc_mean for h in history), default=float("nan"))
    summary = TrainingSummary(
        run=run_name,
        model_dir=str(model_dir),
        trainer="ray" if ray else "plain",
        epochs=len(history),
        best_val_auprc_mean=val_mean,
        choice=dict(model.choice),
        validation=model.validation,
        test=test,
        seconds={k: round(v, 2) for k, v in seconds.items()},
        snapshot=str(snapshot_dir),
        content_hash=graph.content_hash,
    )
    if track:
        chosen_val = _mean([model.validation[t]["auprc"][model.choice[t]] for t in model.choice])
        logged = log_training_run(
            settings,
            model_dir,
            params={
                **config.as_dict(),
                "trainer": summary.trainer,
                "split": split.as_dict(),
                "num_workers": ray.num_workers if ray else 1,
            },
            history=[h.__dict__ for h in history],
            metrics={
                "val_auprc_mean": chosen_val,
                **{f"test_auprc_{t}": m["auprc"] for t, m in test["threats"].items()},
                **{f"test_auroc_{t}": m["auroc"] for t, m in test["threats"].items()},
            },
            tags={"snapshot_hash": graph.content_hash, "snapshot": str(snapshot_dir), "run": run_name},
            run_name=run_name,
            promote=promote,
            gate=lambda name, champion: _gate(settings, model, graph, scores, name, champion, summary),
        )
        summary.tracking = logged.__dict__
        summary.model_version = f"{REGISTERED_MODEL}/{logged.version}"
        summary.seconds["tracking"] = round(time.perf_counter() - step, 2)
    summary.seconds["total"] = round(time.perf_counter() - started, 2)
    log.info("trained %s: %d epochs, model in %s", run_name, summary.epochs, model_dir)
    return summary


def _gate(
    settings: Settings,
    model: RiskModel,
    graph: RiskGraph,
    scores: np.ndarray,
    version_name: str,
    champion: Any | None,
    summary: TrainingSummary,
) -> GateReport:
    """The validation gate of a new version against the registry's champion (None: there is none yet)."""
    current, current_name = None, None
    if champion is not None:
        current = RiskModel.load(download_version(settings, champion))
        current_name = f"{REGISTERED_MODEL}/{champion.version}"
    report = validate_model(
        model, graph, model_version=version_name, champion=current, champion_version=current_name, scores=scores
    )
    summary.gate = report.as_dict()
    log.info("validation gate of %s: %s", version_name, report.summary())
    return report


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else float("nan")
