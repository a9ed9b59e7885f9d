"""Cypher for monitoring (:mod:`serving.monitor`): the run record, alerts, verdict efficacy, backlog, job health.

A monitoring run is one ``(:MonitorRun {run_id})`` node (its summary; the full record is in the history file),
and every alert one ``(:Alert {alert_id})`` node with ``status`` ``open`` or ``closed``. An alert closes when a
later monitoring run no longer raises the same rule for the same subject.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s

A, V, RUN, MON, ALERT = s.ACCOUNT, s.VERDICT, s.SCORING_RUN, s.MONITOR_RUN, s.ALERT

#: ``$run_id``, ``$props`` (flat map of numbers and strings).
RECORD_MONITOR_RUN: Final = (
    f"MERGE (m:{MON.label} {{{MON.key}: $run_id}})\nON CREATE SET m.at = datetime()\nSET m += $props"
)

#: ``$rows``: alert maps (``alert_id``, ``rule``, ``severity``, ``observed``, ``threshold``, ``run_id``,
#: ``scoring_run_id``, ``subject``, ``message``, ``at`` epoch ms). Idempotent by ``alert_id``.
WRITE_ALERTS: Final = (
    "UNWIND $rows AS row\n"
    f"MERGE (x:{ALERT.label} {{{ALERT.key}: row.alert_id}})\n"
    "ON CREATE SET x.status = 'open'\n"
    "SET x.rule = row.rule, x.severity = row.severity, x.observed = row.observed, x.threshold = row.threshold,\n"
    "    x.run_id = row.run_id, x.scoring_run_id = row.scoring_run_id, x.subject = row.subject,\n"
    "    x.message = row.message, x.at = datetime({epochMillis: row.at})\n"
    "RETURN count(x) AS written"
)

#: Close open alerts not raised again by ``$run_id``: ``$raised`` lists the ``rule|subject`` keys it raised.
CLOSE_RESOLVED: Final = (
    f"MATCH (x:{ALERT.label} {{status: 'open'}})\n"
    "WHERE x.run_id <> $run_id AND NOT (x.rule + '|' + coalesce(x.subject, '')) IN $raised\n"
    "SET x.status = 'closed', x.closed_at = datetime(), x.closed_by = $run_id\n"
    "RETURN count(x) AS closed"
)

#: Record how the webhook delivery went on ``$alert_ids``: ``$delivery`` (``sent``, ``failed: …``, ``off``).
SET_DELIVERY: Final = (
    f"UNWIND $alert_ids AS id\nMATCH (x:{ALERT.label} {{{ALERT.key}: id}})\n"
    "SET x.delivery = $delivery, x.delivery_attempts = $attempts"
)

#: Every alert, newest first (``$limit``).
ALERTS: Final = (
    f"MATCH (x:{ALERT.label})\n"
    "RETURN x {.*, at: toString(x.at), closed_at: toString(x.closed_at)} AS alert\n"
    "ORDER BY x.at DESC, x.alert_id LIMIT $limit"
)

#: Verdicts by threat, model version (of the run that scored the account) and ISO week, with counts.
VERDICT_EFFICACY: Final = (
    f"MATCH (v:{V.label}) WHERE v.threat IS NOT NULL\n"
    f"OPTIONAL MATCH (r:{RUN.label} {{{RUN.key}: v.risk_run_id}})\n"
    "WITH v.threat AS threat, coalesce(r.model_version, 'unknown') AS model_version,\n"
    "     toString(date.truncate('week', v.at)) AS week, v.verdict AS verdict\n"
    "RETURN threat, model_version, week, verdict, count(*) AS n"
)

#: Flagged accounts (label not ``$clear``) never reviewed, per label; and verdicts after ``$since`` (epoch ms).
VERDICT_BACKLOG: Final = (
    f"MATCH (a:{A.label}) WHERE a.risk_label IS NOT NULL AND a.risk_label <> $clear AND a.verdict IS NULL\n"
    "RETURN a.risk_label AS threat, count(a) AS n"
)
VERDICTS_SINCE: Final = f"MATCH (v:{V.label}) WHERE v.at >= datetime({{epochMillis: $since}}) RETURN count(v) AS n"

#: When the last ingest batch committed (epoch ms, null when none).
LAST_INGEST: Final = f"MATCH (b:{s.INGEST_BATCH.label}) RETURN max(b.committed_at).epochMillis AS at"

#: Scoring runs still ``running`` (``run_id``, ``started_at`` epoch ms).
RUNNING_SCORING_RUNS: Final = (
    f"MATCH (r:{RUN.label} {{status: 'running'}})\n"
    "RETURN r.run_id AS run_id, r.started_at.epochMillis AS started_at ORDER BY r.started_at"
)

#: The model versions in use: accounts per ``risk_model_version``.
MODELS_IN_USE: Final = (
    f"MATCH (a:{A.label}) WHERE a.risk_model_version IS NOT NULL\n"
    "RETURN a.risk_model_version AS model_version, count(a) AS accounts ORDER BY accounts DESC"
)

#: Rings by the day they were first detected: how many, and how many of those are still active.
RINGS_BY_DAY: Final = (
    f"MATCH (r:{s.RING.label}) WHERE r.first_detected IS NOT NULL\n"
    "RETURN toString(date(r.first_detected)) AS day, count(r) AS new,\n"
    "       count(CASE WHEN r.status = 'active' THEN 1 END) AS active\n"
    "ORDER BY day"
)
