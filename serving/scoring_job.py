"""The scoring job (``ringwatch score``): resume an unfinished run, or score the graph afresh and write it back.

The steps and their guarantees are :mod:`serving.score`'s; this module chains them for one run: find an
unfinished run with a saved plan (resume it), else load the model, read the graph — from the snapshot it was
given when no ringwatch command has changed the graph since (:func:`gnn.snapshot_job.current_snapshot`), else
by exporting it —, score it in one inference pass that also stages the online API's feature store
(:mod:`serving.feature_store`: every node's model inputs as this run computed them; with Ray Data actors the
actors score and the store takes its own pass), fix and save the plan, publish the store beside it, then write
it back. ``ScoringSummary.seconds`` has every step (the monitor's included).
With a challenger (``--challenger``), it also scores in shadow and records the comparison
(:mod:`serving.shadow`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j

from gnn.batch_inference import InferenceConfig
from gnn.batch_inference import main as score_with_ray_data
from gnn.build import build_risk_graph
from gnn.export import export_graph
from gnn.graph_data import RiskGraph
from gnn.snapshot import load_snapshot, write_snapshot
from gnn.snapshot_job import current_snapshot
from gnn.thresholds import ThresholdPolicy
from gnn.tracking import CHAMPION, load_model, log_shadow_comparison
from graph import schema as s
from graph.logs import logger
from graph.runs import Progress, new_run_id, run_scope
from graph.settings import Settings
from serving.feature_store import incident_digests, stage_feature_store
from serving.score import (
    DEFAULT_BATCH_SIZE,
    ScoringError,
    load_plan,
    plan_run,
    save_plan,
    touched_since,
    unfinished_runs,
    write_scores,
)
from serving.shadow import challenger_plan, load_challenger, record_comparison, save_challenger, write_challenger

log = logger(__name__)


@dataclass
class ScoringSummary:
    """What one scoring run did.

    Attributes:
        run_id: the run (``score-…``).
        model_version: the model that scored.
        resumed: an unfinished run was resumed from its saved plan.
        policy: the threshold policy applied (its description); thresholds: per threat.
        accounts: accounts in the plan; labels: how many of them got each label.
        outcome: ``batches``, ``written_now``, ``already_committed``, ``written``, ``flagged``,
            ``label_changes``.
        plan: the plan's folder.
        graph_from: where the scored graph was read: ``export``, or the snapshot's folder (empty when resumed).
        seconds: per step.
        monitor_seconds: the monitor's own steps (:mod:`serving.monitor`; empty when it did not run or failed).
        challenger: the champion/challenger comparison (:mod:`serving.shadow`) when a challenger scored in shadow.
    """

    run_id: str
    model_version: str
    resumed: bool
    policy: str | None
    thresholds: dict[str, float]
    accounts: int
    labels: dict[str, int]
    outcome: dict[str, int]
    plan: str
    graph_from: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, Any] | None = None
    monitor_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, the outcome's counts at the top level (``ringwatch score --json``)."""
        out = asdict(self)
        return {**{k: v for k, v in out.items() if k != "outcome"}, **self.outcome}


def scoring_dir(settings: Settings) -> Path:
    """Where scoring runs keep their plans: ``<data dir>/scoring``."""
    return settings.data_dir.resolve() / "scoring"


def parse_since(value: str) -> int:
    """An ISO date or time (UTC unless it says otherwise) as epoch milliseconds.

    Raises:
        ScoringError: ``value`` is not an ISO date or time.
    """
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise ScoringError(f"--since {value!r} is not an ISO date or time (e.g. 2026-11-27 or 2026-11-27T06:00)") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def run_scoring(
    settings: Settings,
    driver: neo4j.Driver,
    model: str = CHAMPION,
    since: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    new_run: bool = False,
    ray_actors: int = 0,
    policy: ThresholdPolicy | None = None,
    progress: Progress | None = None,
    monitor: bool = True,
    challenger: str | None = None,
    snapshot: Path | None = None,
) -> ScoringSummary:
    """Resume the newest unfinished run (unless ``new_run``), else score the graph afresh and write it back.

    Args:
        settings: the data folder (plans) and the model registry.
        driver: an open driver (the caller owns it).
        model: ``"champion"`` or a model folder.
        since: an ISO time: write only accounts touched since then and their neighbourhood.
        batch_size: accounts per write transaction.
        new_run: start afresh even when an unfinished run exists.
        ray_actors: > 0 scores with that many Ray Data actors (:mod:`gnn.batch_inference`) instead of in this
            process; the exported graph is then saved as a snapshot in the run's folder for the actors to read.
        policy: replaces the model's thresholds for this run (``--fpr-target`` / ``--budget``).
        progress: called as ``progress(stage, done, total)``.
        monitor: run the monitor (:mod:`serving.monitor`) on the finished run; its failure is logged only.
        challenger: a model to score in shadow beside the champion (``ringwatch-risk/<n>`` or a folder;
            :mod:`serving.shadow`): its scores go to ``challenger_*`` properties only, and the comparison is
            stored on the run node, in MLflow and in the run's folder.
        snapshot: a snapshot of the graph (the one the model was trained on, typically): read instead of
            exporting the graph when no ringwatch command has changed the graph since it was taken; otherwise
            the graph is exported (the log says why).

    Raises:
        ScoringError: ``since`` is not a time, or a saved plan is unreadable.
        TrackingError: ``"champion"`` and the registry has none or cannot be read (or the shadow comparison
            could not be logged).
        GraphWriteError: a batch failed; the run stays ``running`` and the next call resumes it.
    """
    timings: dict[str, float] = {}
    database = settings.neo4j_database
    plans = scoring_dir(settings)
    resumable = [] if new_run else [r for r in unfinished_runs(driver, database) if (plans / r["run_id"]).is_dir()]
    graph: RiskGraph | None = None  # the scored graph, for the monitor (a resumed run has none)
    if resumable:
        run, frame = load_plan(plans / resumable[0]["run_id"])
        log.warning(
            "resuming unfinished scoring run %s (model %s); committed batches are skipped",
            run.run_id,
            run.model_version,
        )
        resumed, graph_from = True, ""
    else:
        risk_model, version, model_dir = load_model(settings, model)
        run_id = new_run_id("score")
        with run_scope(run_id):
            started = time.perf_counter()
            stale = None if snapshot is None else current_snapshot(driver, database, snapshot)
            read_from = snapshot if stale is None else None  # the given snapshot, when it holds the graph as it is
            if read_from is not None:
                log.info("scoring the graph as snapshot %s holds it: unchanged since it was taken", read_from)
                graph, tables = load_snapshot(read_from)
                graph_from, step_name = str(read_from), "snapshot_read"
            else:
                if snapshot is not None:
                    log.info("not scoring from snapshot %s: %s; exporting the graph", snapshot, stale)
                tables = export_graph(driver, database, progress=progress)
                graph = build_risk_graph(tables.nodes, tables.rels)
                graph_from, step_name = "export", "export"
            timings[step_name] = time.perf_counter() - started
            step = time.perf_counter()
            digests = incident_digests(tables.rels, graph.ids[s.ACCOUNT.label])  # for the feature store
            timings["digests"] = time.perf_counter() - step
            actors_read = read_from  # what Ray Data's actors read: the snapshot, or the graph just exported
            if ray_actors and actors_read is None:
                step = time.perf_counter()
                actors_read = plans / run_id / "snapshot"
                write_snapshot(tables, actors_read, graph=graph, source="scoring run " + run_id, overwrite=True)
                timings["actors_snapshot"] = time.perf_counter() - step
            del tables
            since_ms = parse_since(since) if since else None
            touched = touched_since(driver, database, since_ms) if since_ms is not None else None
            if touched is not None:
                log.info("%d accounts have events since %s", len(touched), since)
            if progress:
                progress(f"scoring {graph.num_accounts:,} accounts", 0, graph.num_accounts)
            scores = None
            if ray_actors and actors_read is not None:
                step = time.perf_counter()
                scores = score_with_ray_data(
                    model_dir,
                    actors_read,
                    graph.num_accounts,
                    InferenceConfig(actors=ray_actors, address=settings.ray_address),
                )
                timings["ray_actors"] = time.perf_counter() - step
            # One inference pass gives the scores and the online API's feature store (its arrays staged now,
            # published once the plan is saved: a store is never seen without its run's plan).
            step = time.perf_counter()
            staged = stage_feature_store(plans / run_id, risk_model, graph, digests)
            if scores is None:
                scores = risk_model.calibrate(staged.raw)
            timings["inference_and_store"] = time.perf_counter() - step
            step = time.perf_counter()
            run, frame = plan_run(
                risk_model,
                graph,
                version,
                run_id=run_id,
                since_ms=since_ms,
                touched=touched,
                batch_size=batch_size,
                policy=policy,
                scores=scores,
            )
            timings["labels_and_reasons"] = time.perf_counter() - step
            step = time.perf_counter()
            save_plan(plans / run.run_id, run, frame)
            staged.publish(run.run_id, version)
            timings["save_plan_and_store"] = time.perf_counter() - step
            if challenger is not None:
                step = time.perf_counter()
                other, other_version, _ = load_model(settings, challenger)
                save_challenger(plans / run.run_id, challenger_plan(other, graph, frame, policy), other_version)
                timings["challenger"] = time.perf_counter() - step
        resumed = False
    with run_scope(run.run_id):
        shadow = load_challenger(plans / run.run_id)
        if shadow is not None:  # before the champion's write, which completes the run: a kill resumes both
            write_challenger(driver, database, run.run_id, shadow[1], shadow[0], run.batch_size, progress)
        step = time.perf_counter()
        outcome = write_scores(driver, database, run, frame, progress)
        timings["write"] = time.perf_counter() - step
        comparison = None
        if shadow is not None:
            comparison = record_comparison(
                driver, database, run.run_id, frame, shadow[0], shadow[1], plans / run.run_id
            )
            log_shadow_comparison(settings, run.run_id, {"champion_model_version": run.model_version, **comparison})
        summary = ScoringSummary(
            run_id=run.run_id,
            model_version=run.model_version,
            resumed=resumed,
            policy=run.props()["policy"],
            thresholds=run.thresholds,
            accounts=len(frame),
            labels={str(k): int(v) for k, v in frame["label"].value_counts().items()},
            outcome={k: int(v) for k, v in outcome.items()},
            plan=str(plans / run.run_id),
            graph_from=graph_from,
            seconds={k: round(v, 2) for k, v in timings.items()},
            challenger=comparison,
        )
        log.info(
            "scoring run %s: %d accounts written, %d flagged",
            run.run_id,
            outcome.get("written", 0),
            outcome.get("flagged", 0),
        )
    if monitor:
        from serving.monitor.job import monitor_after_scoring

        step = time.perf_counter()
        monitored = monitor_after_scoring(settings, driver, summary, graph)  # logs a failure; the scores stand
        summary.seconds["monitor"] = round(time.perf_counter() - step, 2)
        summary.monitor_seconds = dict(monitored.record.seconds) if monitored is not None else {}
    return summary
