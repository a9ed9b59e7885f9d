"""``ringwatch score``: run (or resume) the scoring job against the configured graph; see :mod:`serving.score`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from graph import schema as s
from graph.settings import Settings
from gnn.batch_inference import InferenceConfig
from gnn.batch_inference import main as score_with_ray_data
from gnn.build import build_risk_graph
from gnn.export import export_graph
from gnn.snapshot import write_snapshot
from gnn.thresholds import ThresholdPolicy
from serving.cli_support import open_graph
from serving.console import console, progress_bar
from serving.score import (
    DEFAULT_BATCH_SIZE,
    ScoringError,
    load_plan,
    new_run_id,
    plan_run,
    save_plan,
    touched_since,
    unfinished_runs,
    write_scores,
)
from serving.train_command import resolve_model


def scoring_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "scoring"


def parse_since(value: str) -> int:
    """An ISO date or time (UTC unless it says otherwise) as epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise ScoringError(f"--since {value!r} is not an ISO date or time (e.g. 2026-11-27 or 2026-11-27T06:00)") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def run_score(settings: Settings, model: str = "champion", since: str | None = None,
              batch_size: int = DEFAULT_BATCH_SIZE, new_run: bool = False, quiet: bool = False,
              ray_actors: int = 0, policy: ThresholdPolicy | None = None) -> dict[str, Any]:
    """Resume the newest unfinished run (unless ``new_run``), else score the graph afresh and write it back.

    ``ray_actors`` > 0 scores with that many Ray Data actors (:mod:`gnn.batch_inference`) instead of in this
    process; the exported graph is then saved as a snapshot in the run's folder for the actors to read.
    ``policy`` (``--fpr-target`` / ``--budget``) replaces the model's thresholds for this run.

    Returns:
        A summary: run id, whether it resumed, counts, seconds per step.
    """
    timings: dict[str, float] = {}
    database = settings.neo4j_database
    with open_graph(settings) as driver:
        resumable = [] if new_run else [r for r in unfinished_runs(driver, database)
                                         if (scoring_dir(settings) / r["run_id"]).is_dir()]
        if resumable:
            run, frame = load_plan(scoring_dir(settings) / resumable[0]["run_id"])
            console.print(f"resuming unfinished scoring run {run.run_id} (model {run.model_version}); "
                          "committed batches are skipped")
            resumed = True
        else:
            risk_model, version, model_dir = resolve_model(settings, model)
            run_id = new_run_id()
            started = time.perf_counter()
            with progress_bar("export") as progress:
                tables = export_graph(driver, database, progress=progress)
            graph = build_risk_graph(tables.nodes, tables.rels)
            snapshot = None
            if ray_actors:
                snapshot = scoring_dir(settings) / run_id / "snapshot"
                write_snapshot(tables, snapshot, graph=graph, source="scoring run " + run_id, overwrite=True)
            del tables
            timings["export"] = time.perf_counter() - started
            touched = None
            since_ms = parse_since(since) if since else None
            if since_ms is not None:
                touched = touched_since(driver, database, since_ms)
                console.print(f"{len(touched):,} accounts have events since {since}")
            step = time.perf_counter()
            with console.status(f"scoring {graph.num_accounts:,} accounts…"):
                scores = None if snapshot is None else score_with_ray_data(
                    model_dir, snapshot, graph.num_accounts, InferenceConfig(actors=ray_actors))
                run, frame = plan_run(risk_model, graph, version, run_id=run_id, since_ms=since_ms,
                                      touched=touched, batch_size=batch_size, policy=policy, scores=scores)
            timings["score"] = time.perf_counter() - step
            save_plan(scoring_dir(settings) / run.run_id, run, frame)
            resumed = False
        step = time.perf_counter()
        with progress_bar(f"scoring run {run.run_id}") as progress:
            outcome = write_scores(driver, database, run, frame, progress)
        timings["write"] = time.perf_counter() - step
    summary = {"run_id": run.run_id, "model_version": run.model_version, "resumed": resumed,
               "policy": run.props()["policy"], "thresholds": run.thresholds,
               "accounts": len(frame), "labels": frame["label"].value_counts().to_dict(), **outcome,
               "plan": str(scoring_dir(settings) / run.run_id), "seconds": {k: round(v, 2) for k, v in timings.items()}}
    if not quiet:
        _print(summary)
    return summary


def _print(summary: dict[str, Any]) -> None:
    table = Table(title=f"scoring run {summary['run_id']} — model {summary['model_version']}")
    table.add_column("label")
    table.add_column("accounts", justify="right")
    for label in (*s.THREATS, s.CLEAR):
        table.add_row(label, f"{summary['labels'].get(label, 0):,}")
    console.print(table)
    console.print(f"wrote {summary['written']:,} accounts in {summary['batches']} batches "
                  f"({summary['written_now']} now, {summary['already_committed']} already committed); "
                  f"{summary['label_changes']:,} labels changed since the previous run; plan in {summary['plan']}")
    if summary.get("policy"):
        console.print(f"thresholds: {summary['policy']} → " + ", ".join(
            f"{t} {v:.3f}" for t, v in summary["thresholds"].items()))
