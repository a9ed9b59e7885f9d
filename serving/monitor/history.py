"""The monitoring history: one record per monitoring run, the table the dashboard and tests read.

Each run appends one JSON line to ``<data dir>/monitor/history.jsonl`` (the whole :class:`MonitorRecord`:
drift per feature and score, flagged shares, churn, efficacy, data quality, alerts), and writes a
``(:MonitorRun {run_id})`` node with its headline figures, so the investigators' Browser sees that monitoring
ran. A JSON-lines file because every record is a nested document read whole, appended once, never updated.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from graph.private_files import FILE_MODE, private_dir
from graph.settings import Settings
from serving.monitor.profiles import MonitorError, monitor_dir

HISTORY_FILE: Final = "history.jsonl"
ALERT_LOG: Final = "alerts.jsonl"


@dataclass
class MonitorRecord:
    """One monitoring run (see :func:`serving.monitor.job.run_monitor` for how each part is measured).

    Attributes:
        run_id: ``monitor-…``; scoring_run_id: the scoring run it looked at; at: when (ISO, UTC).
        model_version: the model of that scoring run; champion: the registry's champion now.
        accounts: accounts in the scoring run.
        references: the scoring run compared with (``previous``) and the champion's snapshot (``champion``).
        feature_drift: per reference, ``[{"name", "psi", "ks", "reference_mean", "current_mean"}…]``, largest
            PSI first.
        score_drift: per reference, the same for each threat's score (``score_<threat>``).
        flagged_share: per threat, this run's share of accounts with that label; previous_flagged_share the
            previous run's.
        label_churn: ``"before->after": count`` against the previous run.
        efficacy: :class:`serving.monitor.efficacy.Efficacy` as data.
        quality: the newest ingest's data-quality figures and the jumps found.
        alerts: the alerts raised (as data); delivery: how the webhook delivery went.
        seconds: per step.
    """

    run_id: str
    scoring_run_id: str
    at: str
    model_version: str
    champion: str | None
    accounts: int
    references: dict[str, str | None]
    feature_drift: dict[str, list[dict[str, Any]]]
    score_drift: dict[str, list[dict[str, Any]]]
    flagged_share: dict[str, float]
    previous_flagged_share: dict[str, float] | None
    label_churn: dict[str, int]
    efficacy: dict[str, Any]
    quality: dict[str, Any]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    delivery: str = "off"
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (one history line; ``ringwatch monitor --json``)."""
        return asdict(self)

    def top_features(self, reference: str, n: int = 5) -> list[str]:
        """Names of the ``n`` most drifted features against ``reference``."""
        return [d["name"] for d in self.feature_drift.get(reference, [])[:n]]


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` (created owner-only), flushed to disk before returning."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file, oldest first (a torn last line, from a crash, is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def history_path(settings: Settings) -> Path:
    return monitor_dir(settings) / HISTORY_FILE


def alert_log_path(settings: Settings) -> Path:
    return monitor_dir(settings) / ALERT_LOG


def read_history(settings: Settings) -> list[dict[str, Any]]:
    """The monitoring history, oldest first (empty when monitoring never ran)."""
    return read_jsonl(history_path(settings))


def latest_record(settings: Settings, scoring_run_id: str | None = None) -> dict[str, Any]:
    """The newest history record (of ``scoring_run_id`` when given).

    Raises:
        MonitorError: the history is empty, or holds no record of that run.
    """
    records = read_history(settings)
    if scoring_run_id is not None:
        records = [r for r in records if r.get("scoring_run_id") == scoring_run_id]
    if not records:
        what = f"for scoring run {scoring_run_id!r}" if scoring_run_id else "yet"
        raise MonitorError(
            f"no monitoring record {what} in {history_path(settings)}: run `ringwatch score` or `ringwatch monitor`"
        )
    return records[-1]
