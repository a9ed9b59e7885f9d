"""``ringwatch train`` and ``ringwatch evaluate``: from Neo4j or a snapshot to a tracked model and its metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from graph.schema import THREATS
from graph.settings import Settings
from gnn.estimator import RiskModel
from gnn.evaluation import evaluate_model, evaluation_scope, save_report
from gnn.graph_data import RiskGraph
from gnn.ray_train import RayConfig
from gnn.snapshot import read_snapshot
from gnn.tracking import champion_model_dir
from gnn.train import TrainConfig
from ingest.read import read_truth
from serving.console import console, safe
from serving.snapshot_command import run_snapshot


def training_graph(settings: Settings, snapshot: Path | None) -> tuple[RiskGraph, Path]:
    """The graph to train or evaluate on: a given snapshot, or a fresh snapshot exported from Neo4j."""
    if snapshot is None:
        snapshot = settings.data_dir.resolve() / "snapshots" / time.strftime("%Y%m%dT%H%M%S")
        run_snapshot(settings, snapshot)
    with console.status(f"reading snapshot {snapshot}…"):
        return read_snapshot(snapshot), snapshot


def run_train(settings: Settings, snapshot: Path | None, config: TrainConfig, ray: RayConfig | None,
              quiet: bool = False) -> dict[str, Any]:
    from gnn.training_job import main as train_main

    graph, snapshot = training_graph(settings, snapshot)

    def show(epoch) -> None:
        aps = ", ".join(f"{k} {v:.3f}" for k, v in epoch.val_auprc.items())
        console.print(f"epoch {epoch.epoch:3d}  loss {epoch.loss:.4f}  val AUPRC {aps}  ({epoch.seconds:.1f} s)")

    with console.status("training (Ray Train)…" if ray else "training…"):
        summary = train_main(settings, graph, snapshot, config, ray, on_epoch=None if quiet else show)
    if not quiet:
        _print_training(summary)
    return summary


def _print_training(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['run']} — validation AUPRC and the shipped choice")
    for column in ("threat", "gnn", "baseline", "ensemble", "shipped", "test AUPRC", "test AUROC"):
        table.add_column(column)
    for threat in THREATS:
        v = summary["validation"][threat]["auprc"]
        t = summary["test"]["threats"][threat]
        table.add_row(threat, *(f"{v.get(s, float('nan')):.3f}" for s in ("gnn", "baseline", "ensemble")),
                      summary["choice"][threat], f"{t['auprc']:.3f}", f"{t['auroc']:.3f}")
    console.print(table)
    tracking = summary.get("tracking")
    if tracking:
        verdict = "promoted to [bold]champion[/bold]" if tracking["promoted"] else "not better than the champion"
        console.print(f"registered ringwatch-risk version {tracking['version']} (MLflow run {tracking['run_id']}): "
                      f"{verdict}")
    console.print(f"model folder: {safe(summary['model_dir'])}")


def resolve_model(settings: Settings, model: str) -> tuple[RiskModel, str, Path]:
    """``champion`` (the registry alias) or a model folder: the model, its version, its folder."""
    if model == "champion":
        folder, version = champion_model_dir(settings)
        return RiskModel.load(folder), version, folder
    path = Path(model)
    return RiskModel.load(path), path.name, path


def run_evaluate(settings: Settings, model: str, snapshot: Path | None, truth: Path | None,
                 out: Path | None) -> dict[str, Any]:
    risk_model, version, _ = resolve_model(settings, model)
    graph, _ = training_graph(settings, snapshot)
    truth_frame = read_truth(truth) if truth else None
    with console.status("scoring…"):
        scores = risk_model.decision_function(graph)
    result = evaluate_model(risk_model, graph, truth_frame, version, scores=scores)
    if out is not None:
        targets, evaluated, _ = evaluation_scope(risk_model, graph, truth_frame)
        result["files"] = [str(p) for p in save_report(result, scores, targets, evaluated, out)]
    return result


def print_evaluation(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['model_version']} on {result['evaluated_accounts']:,} accounts ({result['scope']})")
    for column in ("threat", "AUROC", "AUPRC", "base rate", "Recall@K", "precision", "recall", "FPR", "ECE"):
        table.add_column(column, justify="right" if column != "threat" else "left")
    for threat, m in {**result["threats"], "overall": result["overall"]}.items():
        ece = m.get("calibration", {}).get("ece", float("nan"))
        table.add_row(threat, *(f"{m[k]:.3f}" for k in ("auroc", "auprc", "base_rate", "recall_at_k", "precision",
                                                        "recall", "fpr")), f"{ece:.3f}")
    console.print(table)
    if "account_fpr" in result["overall"]:
        console.print(f"account false-positive rate at the written labels: {result['overall']['account_fpr']:.4f}")
    rings = result.get("rings")
    if rings:
        kinds = ", ".join(f"{k} {v['recovered']}/{v['planted']}" for k, v in rings["by_kind"].items())
        console.print(f"rings: {rings['recovered']} of {rings['planted']} planted rings recovered "
                      f"(≥{rings['share_required']:.0%} of members flagged in one detected ring) → recall "
                      f"{rings['recall']:.3f} ({kinds}); {rings['detected']} detected, purity {rings['purity']:.2f}")
        if "unlabelled_rings" in rings:
            u = rings["unlabelled_rings"]
            console.print(f"rings with no labelled member: {u['recovered']} found / {u['planted']} planted")
    for f in result.get("files", []):
        console.print(f"wrote {safe(f)}")
