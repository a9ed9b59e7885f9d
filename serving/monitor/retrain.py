"""The retraining trigger: when a challenger should be trained (:class:`serving.monitor.config.RetrainPolicy`),
and ``ringwatch monitor --retrain`` training it.

The policy's reasons, any of which triggers: a feature- or score-drift alert in the monitoring run; at least
``min_new_verdicts`` verdicts recorded since the champion was registered (they are new labels); the champion
older than ``max_champion_age_days``; no champion at all. A challenger is trained on a fresh snapshot of the
current graph (labels and verdicts included) by the training job (:func:`gnn.training_job.main`) and
registered in the model registry **without** being promoted: the champion stays until a promotion decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import neo4j

from gnn.feature_defs import DAY_MS
from gnn.snapshot_job import graph_source, take_snapshot
from graph.logs import logger
from graph.queries import monitor as q
from graph.runs import Progress
from graph.settings import Settings
from serving.monitor.config import RetrainPolicy
from serving.monitor.history import MonitorRecord
from serving.monitor.profiles import monitor_dir

DRIFT_RULES = ("feature_psi", "score_psi")

log = logger(__name__)


@dataclass
class RetrainOutcome:
    """Why retraining was (or was not) triggered, and the challenger trained (its training summary)."""

    reasons: list[str]
    trained: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"reasons": self.reasons, "trained": self.trained}


def retrain_reasons(
    settings: Settings, driver: neo4j.Driver, record: MonitorRecord, policy: RetrainPolicy
) -> list[str]:
    """The policy's reasons to retrain now (empty: no need)."""
    from gnn.tracking import champion_version, tracking_client

    reasons = []
    drift = sorted({a["rule"] for a in record.alerts if a["rule"] in DRIFT_RULES})
    if policy.on_drift and drift:
        reasons.append(f"drift alerts ({', '.join(drift)})")
    champion = champion_version(tracking_client(settings))
    if champion is None:
        return [*reasons, "no champion in the registry"]
    born = int(champion.creation_timestamp)
    if policy.min_new_verdicts:
        records, _, _ = driver.execute_query(
            q.VERDICTS_SINCE, since=born, database_=settings.neo4j_database, routing_=neo4j.RoutingControl.READ
        )
        new = int(records[0]["n"])
        if new >= policy.min_new_verdicts:
            reasons.append(f"{new} verdicts since the champion")
    age_days = (time.time() * 1000 - born) / DAY_MS
    if policy.max_champion_age_days and age_days > policy.max_champion_age_days:
        reasons.append(f"champion is {age_days:.0f} days old")
    return reasons


def train_challenger(
    settings: Settings, driver: neo4j.Driver, policy: RetrainPolicy, run_id: str, progress: Progress | None = None
) -> dict[str, Any]:
    """Snapshot the graph and train a model on it, registered but not promoted; returns the training summary.

    Raises:
        ModelError: training failed; TrackingError: the registry failed (the model is saved, not registered).
    """
    from gnn.snapshot import read_snapshot
    from gnn.train import TrainConfig
    from gnn.training_job import main as train

    snapshot = monitor_dir(settings) / "retrain" / run_id / "snapshot"
    take_snapshot(
        driver, settings.neo4j_database, snapshot, source=graph_source(settings), overwrite=True, progress=progress
    )
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "epochs": policy.epochs,
            "hidden": policy.hidden,
            "patience": policy.patience,
            "sampling": policy.sampling,
        }.items()
        if v
    }
    summary = train(settings, read_snapshot(snapshot), snapshot, TrainConfig(**overrides), None, promote=False)
    log.info("challenger %s trained on %s and registered, not promoted", summary.model_version, snapshot)
    return summary.as_dict()


def retrain_if_needed(
    settings: Settings,
    driver: neo4j.Driver,
    record: MonitorRecord,
    policy: RetrainPolicy,
    progress: Progress | None = None,
) -> RetrainOutcome:
    """Train a challenger when the policy gives a reason (see the module docstring)."""
    reasons = retrain_reasons(settings, driver, record, policy)
    if not reasons:
        log.info("no retraining needed after %s", record.run_id)
        return RetrainOutcome([])
    log.info("retraining after %s: %s", record.run_id, "; ".join(reasons))
    return RetrainOutcome(reasons, train_challenger(settings, driver, policy, record.run_id, progress))
