"""Job metrics in Prometheus' exposition format, for node_exporter's textfile collector.

Batch jobs are not scraped while they run; instead each monitoring run rewrites one ``.prom`` file
(atomically, with :func:`prometheus_client.write_to_textfile`) that node_exporter's
``--collector.textfile.directory`` picks up. Metrics (gauges, labelled):

- ``ringwatch_flagged_accounts{threat}``, ``ringwatch_scored_accounts``: the scoring run's output;
- ``ringwatch_scoring_run_seconds`` (when the scoring job called the monitor), ``ringwatch_monitor_seconds``;
- ``ringwatch_feature_psi_max{reference}``, ``ringwatch_feature_psi{reference,feature}`` (the five most
  drifted), ``ringwatch_score_psi{reference,threat}``;
- ``ringwatch_verdict_precision{threat}``, ``ringwatch_verdict_backlog{threat}``;
- ``ringwatch_alerts{severity}`` raised by the run; ``ringwatch_monitor_last_run_timestamp_seconds``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from graph import schema as s
from graph.private_files import private_dir
from graph.settings import Settings
from serving.monitor.config import PrometheusPolicy
from serving.monitor.history import MonitorRecord
from serving.monitor.profiles import monitor_dir

TEXTFILE: Final = "ringwatch.prom"
TOP_FEATURES: Final = 5


def textfile_path(settings: Settings, policy: PrometheusPolicy) -> Path:
    """The ``.prom`` file: the configured one, else ``<data dir>/monitor/metrics/ringwatch.prom``."""
    return Path(policy.textfile) if policy.textfile else monitor_dir(settings) / "metrics" / TEXTFILE


def registry_for(record: MonitorRecord, flagged: dict[str, int], scoring_seconds: float | None) -> CollectorRegistry:
    """A registry holding the run's metrics (see the module docstring)."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    g = gauge("ringwatch_flagged_accounts", "Accounts the scoring run labelled with each threat.", ("threat",))
    for threat in s.THREATS:
        g.labels(threat).set(flagged.get(threat, 0))
    gauge("ringwatch_scored_accounts", "Accounts in the scoring run.").set(record.accounts)
    if scoring_seconds is not None:
        gauge("ringwatch_scoring_run_seconds", "Duration of the scoring run.").set(scoring_seconds)
    gauge("ringwatch_monitor_seconds", "Duration of the monitoring run.").set(sum(record.seconds.values()))
    top = gauge("ringwatch_feature_psi_max", "Largest feature PSI against each reference.", ("reference",))
    each = gauge("ringwatch_feature_psi", "PSI of the most drifted features.", ("reference", "feature"))
    for reference, drifts in record.feature_drift.items():
        top.labels(reference).set(drifts[0]["psi"] if drifts else 0.0)
        for d in drifts[:TOP_FEATURES]:
            each.labels(reference, d["name"]).set(d["psi"])
    score = gauge("ringwatch_score_psi", "PSI of each threat's score distribution.", ("reference", "threat"))
    for reference, drifts in record.score_drift.items():
        for d in drifts:
            score.labels(reference, d["name"].removeprefix("score_")).set(d["psi"])
    precision = gauge("ringwatch_verdict_precision", "Confirmed over reviewed verdicts.", ("threat",))
    backlog = gauge("ringwatch_verdict_backlog", "Flagged accounts never reviewed.", ("threat",))
    for threat, p in record.efficacy.get("precision", {}).items():
        if p["precision"] is not None:
            precision.labels(threat).set(p["precision"])
    for threat, n in record.efficacy.get("backlog", {}).items():
        backlog.labels(threat).set(n)
    alerts = gauge("ringwatch_alerts", "Alerts raised by the monitoring run.", ("severity",))
    for severity in ("warning", "critical"):
        alerts.labels(severity).set(sum(1 for a in record.alerts if a["severity"] == severity))
    gauge("ringwatch_monitor_last_run_timestamp_seconds", "When monitoring last ran.").set(time.time())
    return registry


def write_textfile(
    settings: Settings,
    policy: PrometheusPolicy,
    record: MonitorRecord,
    flagged: dict[str, int],
    scoring_seconds: float | None = None,
) -> Path:
    """Rewrite the run's ``.prom`` file atomically; returns its path."""
    path = textfile_path(settings, policy)
    if not path.parent.exists():
        private_dir(path.parent)
    write_to_textfile(str(path), registry_for(record, flagged, scoring_seconds))
    path.chmod(0o644)  # counts and feature names only, no personal data; node_exporter runs as another user
    return path
