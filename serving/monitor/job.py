"""The monitoring job: one scoring run compared with its references, alerts raised, everything recorded.

:func:`run_monitor` is what ``ringwatch monitor`` runs and what the scoring job calls after every run
(:func:`monitor_after_scoring`, which logs a failure instead of failing the scoring run). One run:

1. takes the scoring run's saved plan (scores and labels) and the previous saved run's;
2. measures feature drift (PSI, KS; :mod:`serving.monitor.drift`) of a sample of account features against the
   previous run's sample and the champion's training snapshot, score drift per threat and label churn
   against the previous run, and the flagged share per threat;
3. reads detection efficacy from verdicts (:mod:`serving.monitor.efficacy`) and the data-quality series
   (:mod:`serving.monitor.quality`);
4. appends the record to the history, writes the ``(:MonitorRun)`` node, applies the alert rules and
   publishes the alerts (:mod:`serving.monitor.alerts`), logs the run to MLflow (experiment
   ``ringwatch-monitoring``) and rewrites the Prometheus textfile (:mod:`serving.monitor.metrics`).

A missing reference (the first run has no previous one; a model without a recorded snapshot) leaves that
comparison out and says so in the record's ``references``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import neo4j
import pandas as pd

from graph import schema as s
from graph.errors import RingwatchError
from graph.logs import logger
from graph.queries import monitor as q
from graph.runs import new_run_id, run_scope
from graph.settings import Settings
from serving.monitor.alerts import Alert, evaluate_rules, publish_alerts, quality_summary, read_job_health
from serving.monitor.config import MonitorConfig, load_config
from serving.monitor.drift import frame_drift, label_churn, shares
from serving.monitor.efficacy import read_efficacy
from serving.monitor.history import MonitorRecord, append_jsonl, history_path
from serving.monitor.metrics import write_textfile
from serving.monitor.profiles import (
    MonitorError,
    feature_sample,
    load_feature_sample,
    plan_scores,
    save_feature_sample,
    snapshot_features,
)
from serving.score import PLAN_FILE, RUN_FILE
from serving.scoring_job import scoring_dir

if TYPE_CHECKING:
    from gnn.graph_data import RiskGraph
    from serving.scoring_job import ScoringSummary

MONITOR_EXPERIMENT: Final = "ringwatch-monitoring"
PREVIOUS, CHAMPION_REF = "previous run", "champion snapshot"

log = logger(__name__)


@dataclass
class MonitorOutcome:
    """A monitoring run: its record (as in the history), the alerts, where the metrics went."""

    record: MonitorRecord
    alerts: list[Alert]
    metrics_file: str | None

    def as_dict(self) -> dict[str, Any]:
        """``ringwatch monitor --json``."""
        return {**self.record.as_dict(), "metrics_file": self.metrics_file}


def saved_runs(settings: Settings) -> list[str]:
    """Scoring runs with a saved plan, oldest first (run ids sort by time)."""
    root = scoring_dir(settings)
    return sorted(p.name for p in root.glob("score-*") if (p / PLAN_FILE).is_file()) if root.is_dir() else []


def run_monitor(
    settings: Settings,
    driver: neo4j.Driver,
    scoring_run_id: str | None = None,
    config: MonitorConfig | None = None,
    graph: RiskGraph | None = None,
    scoring_seconds: float | None = None,
) -> MonitorOutcome:
    """Monitor one scoring run (default: the newest saved) — see the module docstring.

    Args:
        settings: the data folder, registry, webhook.
        driver: an open driver (the caller owns it).
        scoring_run_id: the run to look at.
        config: rules and policies (default: :func:`load_config` of ``RINGWATCH_MONITOR_CONFIG``).
        graph: the graph the run scored (the scoring job passes it); without it the run's kept feature sample
            is used, or, when there is none, the graph is exported from Neo4j.
        scoring_seconds: the scoring run's duration, for the metrics.

    Raises:
        MonitorError: no such run, or no scoring run saved yet; an unreadable configuration.
    """
    config = config or load_config(settings.monitor_config)
    runs = saved_runs(settings)
    if scoring_run_id is None:
        if not runs:
            raise MonitorError(f"no scoring run saved in {scoring_dir(settings)}: run `ringwatch score` first")
        scoring_run_id = runs[-1]
    current = plan_scores(settings, scoring_run_id)  # an unknown id fails here, before anything is written
    earlier = [r for r in runs if r < scoring_run_id]
    previous_id = earlier[-1] if earlier else None
    run_id = new_run_id("monitor")
    with run_scope(run_id):
        return _monitor(settings, driver, run_id, scoring_run_id, current, previous_id, config, graph, scoring_seconds)


def _monitor(
    settings: Settings,
    driver: neo4j.Driver,
    run_id: str,
    scoring_run_id: str,
    current: pd.DataFrame,
    previous_id: str | None,
    config: MonitorConfig,
    graph: RiskGraph | None,
    scoring_seconds: float | None,
) -> MonitorOutcome:
    timings: dict[str, float] = {}
    step = time.perf_counter()
    database = settings.neo4j_database
    features = _current_features(settings, driver, scoring_run_id, graph)
    references: dict[str, str | None] = {PREVIOUS: previous_id, CHAMPION_REF: None}
    feature_drift: dict[str, list[dict[str, Any]]] = {}
    score_drift: dict[str, list[dict[str, Any]]] = {}
    previous = plan_scores(settings, previous_id) if previous_id else None
    prev_features = load_feature_sample(settings, previous_id) if previous_id else None
    if prev_features is not None:
        feature_drift[PREVIOUS] = [asdict(d) for d in frame_drift(prev_features, features)]
    champion, snapshot = _champion(settings)
    if snapshot is not None:
        try:
            reference = snapshot_features(Path(snapshot))
            feature_drift[CHAMPION_REF] = [asdict(d) for d in frame_drift(reference, features)]
            references[CHAMPION_REF] = snapshot
        except MonitorError as e:
            log.warning("%s; feature drift against the champion left out", e)
    if previous is not None:
        score_drift[PREVIOUS] = [
            asdict(d)
            for d in frame_drift(
                previous[list(s.THREATS)].add_prefix("score_"), current[list(s.THREATS)].add_prefix("score_")
            )
        ]
    timings["drift"] = time.perf_counter() - step
    step = time.perf_counter()
    efficacy = read_efficacy(driver, database)
    health = read_job_health(driver, database)
    timings["efficacy"] = time.perf_counter() - step
    record = MonitorRecord(
        run_id=run_id,
        scoring_run_id=scoring_run_id,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_version=_model_version(settings, scoring_run_id),
        champion=champion,
        accounts=len(current),
        references=references,
        feature_drift=feature_drift,
        score_drift=score_drift,
        flagged_share=shares(current["label"], s.THREATS),
        previous_flagged_share=shares(previous["label"], s.THREATS) if previous is not None else None,
        label_churn=label_churn(previous.set_index(s.ACCOUNT.key)["label"], current.set_index(s.ACCOUNT.key)["label"])
        if previous is not None
        else {},
        efficacy=asdict(efficacy),
        quality=quality_summary(settings, config.rules),
    )
    alerts = evaluate_rules(record, config.rules, health)
    record.alerts = [a.as_dict() for a in alerts]
    timings["alerts"] = time.perf_counter() - step - timings["efficacy"]
    record.seconds = {k: round(v, 3) for k, v in timings.items()}
    append_jsonl(history_path(settings), record.as_dict())
    driver.execute_query(q.RECORD_MONITOR_RUN, run_id=run_id, props=_run_props(record), database_=database)
    delivery = publish_alerts(settings, driver, database, record, alerts, config)
    record.delivery = delivery.status
    _log_to_mlflow(settings, record)
    flagged = {str(k): int(v) for k, v in current["label"].value_counts().items()}
    metrics_file = None
    try:
        metrics_file = str(write_textfile(settings, config.prometheus, record, flagged, scoring_seconds))
    except OSError as e:
        log.error("Prometheus textfile not written: %s", e)
    top = record.top_features(CHAMPION_REF if CHAMPION_REF in feature_drift else PREVIOUS, 3)
    log.info(
        "monitored %s: %d alert(s), most drifted features %s, delivery %s",
        scoring_run_id,
        len(alerts),
        ", ".join(top) or "(no reference)",
        delivery.status,
        extra={"scoring_run_id": scoring_run_id, "alerts": len(alerts)},
    )
    return MonitorOutcome(record, alerts, metrics_file)


def monitor_after_scoring(
    settings: Settings, driver: neo4j.Driver, summary: ScoringSummary, graph: RiskGraph | None
) -> MonitorOutcome | None:
    """The scoring job's hook: monitor the run just written; a failure is logged, never raised (the scoring run
    has succeeded whatever the monitor finds)."""
    try:
        return run_monitor(
            settings, driver, summary.run_id, graph=graph, scoring_seconds=sum(summary.seconds.values()) or None
        )
    except Exception as e:  # whatever broke, the scoring run stands: say so in the log, with the cause
        log.error(
            "monitoring after scoring run %s failed (the scores are written): %s: %s",
            summary.run_id,
            type(e).__name__,
            e,
            exc_info=not isinstance(e, RingwatchError),
        )
        return None


def _current_features(
    settings: Settings, driver: neo4j.Driver, scoring_run_id: str, graph: RiskGraph | None
) -> pd.DataFrame:
    if graph is None:
        kept = load_feature_sample(settings, scoring_run_id)
        if kept is not None:
            return kept
        from gnn.build import risk_graph_from_neo4j

        log.info("no feature sample kept for %s: exporting the graph to compute one", scoring_run_id)
        graph = risk_graph_from_neo4j(driver, settings.neo4j_database)
    sample = feature_sample(graph)
    save_feature_sample(settings, scoring_run_id, sample)
    return sample


def _champion(settings: Settings) -> tuple[str | None, str | None]:
    """The champion's version (``ringwatch-risk/<n>``) and training snapshot, (None, None) when unknown."""
    from gnn.tracking import REGISTERED_MODEL, TrackingError, champion_version, tracking_client

    try:
        version = champion_version(tracking_client(settings))
    except TrackingError as e:
        log.warning("champion unknown (%s): drift against its snapshot left out", e)
        return None, None
    if version is None:
        return None, None
    snapshot = (version.tags or {}).get("snapshot")
    return f"{REGISTERED_MODEL}/{version.version}", snapshot


def _model_version(settings: Settings, scoring_run_id: str) -> str:
    try:
        data = json.loads((scoring_dir(settings) / scoring_run_id / RUN_FILE).read_text(encoding="utf-8"))
        return str(data.get("model_version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def _run_props(record: MonitorRecord) -> dict[str, Any]:
    props: dict[str, Any] = {
        "scoring_run_id": record.scoring_run_id,
        "model_version": record.model_version,
        "accounts": record.accounts,
        "alerts": len(record.alerts),
    }
    for reference, drifts in record.feature_drift.items():
        key = "previous" if reference == PREVIOUS else "champion"
        props[f"feature_psi_max_{key}"] = drifts[0]["psi"] if drifts else 0.0
        props[f"top_feature_{key}"] = drifts[0]["name"] if drifts else None
    for threat, share in record.flagged_share.items():
        props[f"flagged_share_{threat}"] = share
    return props


def _log_to_mlflow(settings: Settings, record: MonitorRecord) -> None:
    """Log the record's headline figures and the record itself to MLflow; a failure is logged, not raised."""
    from gnn.tracking import log_record_run, tracking_client

    metrics = {f"flagged_share_{t}": v for t, v in record.flagged_share.items()}
    for reference, drifts in {**record.feature_drift, **record.score_drift}.items():
        key = reference.replace(" ", "_")
        metrics |= {f"psi_{key}_{d['name']}": d["psi"] for d in drifts[:20]}
    metrics["alerts"] = float(len(record.alerts))
    try:
        log_record_run(
            tracking_client(settings),
            settings,
            MONITOR_EXPERIMENT,
            run_name=record.run_id,
            tags={"scoring_run_id": record.scoring_run_id},
            metrics=metrics,
            params={"model_version": record.model_version, "scoring_run_id": record.scoring_run_id},
            record=record.as_dict(),
            record_file="monitor_record.json",
        )
    except Exception as e:  # noqa: BLE001  (MLflow raises many types; history and Neo4j hold the record)
        log.warning("monitoring run %s not logged to MLflow: %s: %s", record.run_id, type(e).__name__, e)
