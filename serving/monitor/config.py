"""The monitor's settings: alert rules, retraining policy, webhook delivery — defaults here, in one place.

Every default below can be overridden by a TOML or JSON file (``ringwatch monitor --config FILE``, or the
``RINGWATCH_MONITOR_CONFIG`` environment variable) with the same section and key names, for example::

    [rules]
    feature_psi = 0.2          # alert when a top feature's PSI exceeds this
    precision_floor = 0.6

    [retrain]
    min_new_verdicts = 100
    epochs = 30

    [webhook]
    retries = 5

The webhook's URL is a secret (a Slack incoming-webhook URL grants posting) and comes from the environment
only: ``RINGWATCH_ALERT_WEBHOOK_URL``. An unknown section or key, or a value of the wrong type, is an error
naming it: a typo must not silently leave a rule at its default.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from serving.monitor.drift import PSI_MAJOR
from serving.monitor.profiles import MonitorError


@dataclass(frozen=True)
class AlertRules:
    """Thresholds of the alert rules (0 turns a count- or hours-based rule off).

    Attributes:
        feature_psi: a feature among the ``feature_top_n`` most drifted with PSI above this (warning) …
        feature_ks: … and a KS statistic above this. PSI on reference-quantile bins jumps when a feature with
            many close discrete levels (``country_freq``, ``shared_ip_max_log``: shares and counts that depend
            on the whole population) moves its levels a little between two samples of one distribution — two
            undrifted 2 000-account exchanges give PSI up to 0.7 there, but KS at most 0.15. Requiring both
            keeps PSI's magnitude and KS's robustness (a 30 % burst from a new country gives KS 0.25–0.3).
        feature_top_n: how many of the most drifted features may raise alerts (one each).
        score_psi: a threat's score PSI above this, against either reference (critical).
        flagged_ratio_high, flagged_ratio_low: a threat's flagged share this many times the previous run's,
            or below this fraction of it (warning); ignored when the previous run flagged under
            ``flagged_min`` accounts of that threat.
        flagged_min: see above.
        precision_floor: a threat's verdict precision (confirmed ÷ reviewed) below this (critical), once
            ``precision_min_verdicts`` verdicts exist for it.
        precision_min_verdicts: see above.
        reject_rate: an ingest's reject rate of any table above this (warning).
        quality_jump: a data-quality figure this many times its median over earlier ingests (warning).
        ingest_max_hours: no ingest batch committed for this many hours (warning; 0: off).
        running_max_hours: a scoring run ``running`` for this many hours (critical; 0: off).
    """

    feature_psi: float = PSI_MAJOR
    feature_ks: float = 0.2
    feature_top_n: int = 20
    score_psi: float = 0.2
    flagged_ratio_high: float = 2.0
    flagged_ratio_low: float = 0.5
    flagged_min: int = 10
    precision_floor: float = 0.5
    precision_min_verdicts: int = 10
    reject_rate: float = 0.05
    quality_jump: float = 3.0
    ingest_max_hours: float = 0.0
    running_max_hours: float = 6.0


@dataclass(frozen=True)
class RetrainPolicy:
    """When ``ringwatch monitor --retrain`` trains a challenger, and how.

    Attributes:
        on_drift: a feature- or score-drift alert in this run.
        min_new_verdicts: at least this many verdicts since the champion was registered (0: off).
        max_champion_age_days: the champion is older than this (0: off).
        epochs, hidden, patience: the challenger's training settings (0: :class:`gnn.train.TrainConfig`'s default).
        sampling: ``neighbor`` or ``full`` (empty: the default).
    """

    on_drift: bool = True
    min_new_verdicts: int = 50
    max_champion_age_days: float = 30.0
    epochs: int = 0
    hidden: int = 0
    patience: int = 0
    sampling: str = ""


@dataclass(frozen=True)
class WebhookPolicy:
    """Delivery of alerts to the webhook: attempts after the first, first back-off (doubled each retry)."""

    retries: int = 3
    backoff_seconds: float = 1.0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class PrometheusPolicy:
    """Where batch jobs write their metrics for node_exporter's textfile collector: a ``.prom`` file path
    (empty: ``<data dir>/monitor/metrics/ringwatch.prom``; point it into the collector's directory)."""

    textfile: str = ""


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor can be configured with (see the module docstring)."""

    rules: AlertRules = field(default_factory=AlertRules)
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    webhook: WebhookPolicy = field(default_factory=WebhookPolicy)
    prometheus: PrometheusPolicy = field(default_factory=PrometheusPolicy)
    source: str = "defaults"


def load_config(path: Path | None) -> MonitorConfig:
    """The defaults, overridden by ``path`` (``.toml`` or ``.json``) when given.

    Raises:
        MonitorError: the file cannot be read or parsed, or names an unknown section or key, or a value of
            the wrong type (the message names the file and the key).
    """
    if path is None:
        return MonitorConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if Path(path).suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise MonitorError(f"monitor config {path} cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise MonitorError(f"monitor config {path} must hold sections (rules, retrain, webhook, prometheus)")
    base = MonitorConfig()
    sections = {f.name: getattr(base, f.name) for f in fields(base) if f.name != "source"}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise MonitorError(f"monitor config {path}: unknown section(s) {unknown}; known: {sorted(sections)}")
    parts = {name: _override(path, name, default, data.get(name, {})) for name, default in sections.items()}
    return MonitorConfig(**parts, source=str(path))


def _override(path: Path, section: str, default: Any, values: Any) -> Any:
    if not isinstance(values, dict):
        raise MonitorError(f"monitor config {path}: [{section}] must be a table of settings")
    known = {f.name: type(getattr(default, f.name)) for f in fields(default)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise MonitorError(f"monitor config {path}: unknown key {section}.{key}; known: {sorted(known)}")
        want = known[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise MonitorError(f"monitor config {path}: {section}.{key} must be a {want.__name__}, got {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise MonitorError(f"monitor config {path}: {section}.{key} must not be negative, got {value!r}")
        changes[key] = value
    return replace(default, **changes)
