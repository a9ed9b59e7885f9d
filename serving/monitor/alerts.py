"""Alerts: the rules (thresholds in :class:`serving.monitor.config.AlertRules`) applied to a monitoring record,
and where an alert goes.

An alert names its rule, severity (``warning`` or ``critical``), what it is about (a feature, a threat, a
table figure), the observed value and the threshold, the monitoring run and scoring run, and when. Its id is
``<monitor run id>:<rule>:<subject>``, so writing it twice is harmless. Every alert is written, in this order,
to the ``(:Alert)`` node (the investigators' "open alerts" query), to ``<data dir>/monitor/alerts.jsonl``, to
the log file (one WARNING or ERROR line each, with the run id), and then — all of a run's alerts in one
POST — to the webhook; the delivery's outcome is added to the node and the alert log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import neo4j

from graph import schema as s
from graph.logs import logger
from graph.queries import monitor as q
from graph.settings import Settings
from serving.monitor.config import AlertRules, MonitorConfig
from serving.monitor.history import MonitorRecord, alert_log_path, append_jsonl
from serving.monitor.quality import quality_jumps, quality_series
from serving.monitor.webhook import Delivery, deliver, slack_payload

WARNING: Final = "warning"
CRITICAL: Final = "critical"
HOUR_MS: Final = 3_600_000

log = logger(__name__)


@dataclass(frozen=True)
class Alert:
    """One raised alert (see the module docstring)."""

    alert_id: str
    rule: str
    severity: str
    subject: str
    observed: float
    threshold: float
    run_id: str
    scoring_run_id: str
    at: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobHealth:
    """What the graph says about the jobs: the last ingest (epoch ms or None), scoring runs still running."""

    last_ingest_ms: int | None
    running: list[dict[str, Any]]
    now_ms: int


def read_job_health(driver: neo4j.Driver, database: str) -> JobHealth:
    """The last ingest time and the scoring runs still ``running``."""
    read = neo4j.RoutingControl.READ
    last, _, _ = driver.execute_query(q.LAST_INGEST, database_=database, routing_=read)
    running, _, _ = driver.execute_query(q.RUNNING_SCORING_RUNS, database_=database, routing_=read)
    return JobHealth(last[0]["at"] if last else None, [dict(r) for r in running], int(time.time() * 1000))


def evaluate_rules(record: MonitorRecord, rules: AlertRules, health: JobHealth) -> list[Alert]:
    """Every alert the record and job health raise under ``rules`` (most drifted first within a rule)."""
    raised: list[tuple[str, str, str, float, float, str]] = []

    def add(rule: str, severity: str, subject: str, observed: float, threshold: float, message: str) -> None:
        raised.append((rule, severity, subject, round(float(observed), 6), float(threshold), message))

    named: set[str] = set()
    for reference, drifts in record.feature_drift.items():
        for d in drifts[: rules.feature_top_n]:
            if d["psi"] > rules.feature_psi and d["ks"] > rules.feature_ks and d["name"] not in named:
                named.add(d["name"])
                add(
                    "feature_psi",
                    WARNING,
                    d["name"],
                    d["psi"],
                    rules.feature_psi,
                    f"feature {d['name']} drifted against the {reference} (PSI {d['psi']:.3f}, KS {d['ks']:.3f}; "
                    f"mean {d['reference_mean']:.3g} → {d['current_mean']:.3g})",
                )
    scored: set[str] = set()
    for reference, drifts in record.score_drift.items():
        for d in drifts:
            if d["psi"] > rules.score_psi and d["name"] not in scored:
                scored.add(d["name"])
                add(
                    "score_psi",
                    CRITICAL,
                    d["name"],
                    d["psi"],
                    rules.score_psi,
                    f"{d['name']} distribution drifted against the {reference} (PSI {d['psi']:.3f})",
                )
    previous = record.previous_flagged_share or {}
    for threat, share in record.flagged_share.items():
        before = previous.get(threat)
        if not before or before * record.accounts < rules.flagged_min:
            continue
        ratio = share / before
        if ratio >= rules.flagged_ratio_high or ratio <= rules.flagged_ratio_low:
            bound = rules.flagged_ratio_high if ratio >= rules.flagged_ratio_high else rules.flagged_ratio_low
            add(
                "flagged_share",
                WARNING,
                threat,
                ratio,
                bound,
                f"{threat} flagged share {share:.4f} is {ratio:.2f}× the previous run's {before:.4f}",
            )
    for threat, p in record.efficacy.get("precision", {}).items():
        reviewed = p["confirmed"] + p[s.FALSE_POSITIVE]
        if (
            p["precision"] is not None
            and reviewed >= rules.precision_min_verdicts
            and p["precision"] < rules.precision_floor
        ):
            add(
                "verdict_precision",
                CRITICAL,
                threat,
                p["precision"],
                rules.precision_floor,
                f"{threat} precision from {reviewed} verdicts is {p['precision']:.2f}",
            )
    latest = record.quality.get("latest") or {}
    for table, rate in latest.get("reject_rate", {}).items():
        if rate > rules.reject_rate:
            add(
                "reject_rate",
                WARNING,
                table,
                rate,
                rules.reject_rate,
                f"ingest {latest.get('ingest')} rejected {rate:.1%} of {table}",
            )
    for name, (value, median) in record.quality.get("jumps", {}).items():
        add(
            "quality_jump",
            WARNING,
            name,
            value,
            rules.quality_jump * median,
            f"data quality {name} jumped to {value:.4g} (median of earlier ingests {median:.4g})",
        )
    if rules.ingest_max_hours and health.last_ingest_ms is not None:
        hours = (health.now_ms - health.last_ingest_ms) / HOUR_MS
        if hours > rules.ingest_max_hours:
            add("no_ingest", WARNING, "", hours, rules.ingest_max_hours, f"no ingest for {hours:.1f} hours")
    if rules.running_max_hours:
        for run in health.running:
            started = run["started_at"]
            hours = (health.now_ms - (health.now_ms if started is None else int(started))) / HOUR_MS
            if hours > rules.running_max_hours:
                add(
                    "scoring_stuck",
                    CRITICAL,
                    str(run["run_id"]),
                    hours,
                    rules.running_max_hours,
                    f"scoring run {run['run_id']} has been running for {hours:.1f} hours: rerun `ringwatch score`",
                )
    now = int(time.time() * 1000)
    return [
        Alert(
            f"{record.run_id}:{rule}:{subject}",
            rule,
            sev,
            subject,
            obs,
            thr,
            record.run_id,
            record.scoring_run_id,
            now,
            msg,
        )
        for rule, sev, subject, obs, thr, msg in raised
    ]


def quality_summary(settings: Settings, rules: AlertRules) -> dict[str, Any]:
    """The data-quality part of a record: the newest ingest's figures, the series length, the jumps."""
    points = quality_series(settings)
    return {
        "ingests": len(points),
        "latest": asdict(points[-1]) if points else None,
        "jumps": quality_jumps(points, rules.quality_jump),
    }


def publish_alerts(
    settings: Settings,
    driver: neo4j.Driver,
    database: str,
    record: MonitorRecord,
    alerts: Sequence[Alert],
    config: MonitorConfig,
) -> Delivery:
    """Write the alerts to Neo4j, the alert log and the log file, close resolved ones, then POST them.

    Neo4j and the alert log are written before delivery is tried, so a failed delivery loses nothing; a Neo4j
    failure raises after the alert log and the log file have the alerts.
    """
    rows = [a.as_dict() for a in alerts]
    for a in alerts:
        log.log(
            40 if a.severity == CRITICAL else 30,
            "alert %s %s: %s",
            a.rule,
            a.subject,
            a.message,
            extra={"alert_id": a.alert_id, "observed": a.observed, "threshold": a.threshold},
        )
    log_file = alert_log_path(settings)
    for row in rows:
        append_jsonl(log_file, {**row, "event": "raised"})
    driver.execute_query(q.WRITE_ALERTS, rows=rows, database_=database)
    driver.execute_query(
        q.CLOSE_RESOLVED,
        run_id=record.run_id,
        raised=[f"{a.rule}|{a.subject}" for a in alerts],
        database_=database,
    )
    if not alerts:
        return Delivery("off", 0)
    url = settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
    delivery = deliver(url, slack_payload(rows, record.run_id), config.webhook)
    ids = [a.alert_id for a in alerts]
    append_jsonl(
        log_file,
        {
            "event": "delivery",
            "run_id": record.run_id,
            "alert_ids": ids,
            "delivery": delivery.status,
            "attempts": delivery.attempts,
        },
    )
    driver.execute_query(
        q.SET_DELIVERY, alert_ids=ids, delivery=delivery.status, attempts=delivery.attempts, database_=database
    )
    return delivery
