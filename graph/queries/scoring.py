"""Cypher for the scoring job: write-back of risk scores, the run record, ``--since`` selection, read-back.

Write-back is one :class:`~graph.queries.ingest.WriteKind` (batched ``UNWIND``, keyed by ``account_id``),
written through :class:`graph.writer.BatchWriter` with the ``ScoreBatch`` ledger, so a rerun of the same run
skips the batches that committed. Before a run overwrites an account's scores it copies them to
``prev_risk_*`` — unless the account already carries this run's scores, so replaying a batch keeps the
previous run's values instead of copying the run onto itself.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s
from graph.queries.ingest import ROWS_PARAM, Prop, WriteKind

A = s.ACCOUNT
RUN = s.SCORING_RUN

#: Columns of a write-back batch (``reasons`` is a list of strings per account).
SCORE_COLUMNS: Final = ("account_id", *s.THREATS, "score", "label", "reasons")


def _score_write() -> WriteKind:
    rows = f"${ROWS_PARAM}"
    threat_sets = ", ".join(f"a.{s.risk_property(t)} = {rows}.{t}[i]" for t in s.THREATS)
    cypher = (
        f"UNWIND range(0, size({rows}.{A.key}) - 1) AS i\n"
        f"MATCH (a:{A.label} {{{A.key}: {rows}.{A.key}[i]}})\n"
        "WITH a, i, a.risk_run_id = $run_id AS replay\n"
        "SET a.prev_risk_score = CASE WHEN replay THEN a.prev_risk_score ELSE a.risk_score END,\n"
        "    a.prev_risk_label = CASE WHEN replay THEN a.prev_risk_label ELSE a.risk_label END,\n"
        "    a.prev_risk_run_id = CASE WHEN replay THEN a.prev_risk_run_id ELSE a.risk_run_id END\n"
        f"SET {threat_sets},\n"
        f"    a.risk_score = {rows}.score[i], a.risk_label = {rows}.label[i], a.risk_reasons = {rows}.reasons[i],\n"
        "    a.risk_flagged_by = $by_score, a.risk_rings_run_id = null,\n"
        "    a.risk_model_version = $model_version, a.risk_run_id = $run_id,\n"
        "    a.risk_scored_at = datetime({epochMillis: $scored_at})\n"
        "RETURN count(*) AS written"
    )
    props = tuple(Prop(c) for c in SCORE_COLUMNS[1:])
    return WriteKind("AccountRisk", cypher, (A.key,), props, node=A)


#: The write-back: parameters ``$rows`` (columns of :data:`SCORE_COLUMNS`), ``$run_id``, ``$model_version``,
#: ``$scored_at`` (epoch ms), ``$by_score`` (:data:`graph.schema.FLAGGED_BY_SCORE`).
WRITE_SCORES: Final = _score_write()

START_RUN: Final = (
    f"MERGE (r:{RUN.label} {{{RUN.key}: $run_id}})\n"
    "ON CREATE SET r.started_at = datetime(), r.status = 'running'\n"
    "SET r += $props"
)

FINISH_RUN: Final = (
    f"MATCH (r:{RUN.label} {{{RUN.key}: $run_id}})\nSET r += $props, r.status = $status, r.finished_at = datetime()"
)

UPDATE_RUN: Final = f"MATCH (r:{RUN.label} {{{RUN.key}: $run_id}}) SET r += $props"

#: Runs, newest first: ``$status`` (or null for any).
RUNS: Final = (
    f"MATCH (r:{RUN.label}) WHERE $status IS NULL OR r.status = $status\n"
    "RETURN r {.*, started_at: r.started_at.epochMillis, finished_at: r.finished_at.epochMillis} AS run\n"
    "ORDER BY r.started_at DESC LIMIT $limit"
)

#: Counts of the run's outcome, read after the last batch.
RUN_OUTCOME: Final = (
    f"MATCH (a:{A.label}) WHERE a.risk_run_id = $run_id\n"
    "RETURN count(a) AS written,\n"
    "       count(CASE WHEN a.risk_label <> $clear THEN 1 END) AS flagged,\n"
    "       count(CASE WHEN a.prev_risk_label IS NOT NULL AND a.prev_risk_label <> a.risk_label THEN 1 END)"
    " AS label_changes"
)

_ACTIVITY_RELS = "|".join(r.type for r in s.DOMAIN_RELS)

#: Accounts with activity at or after ``$since`` (epoch ms): created then, or any relationship (either
#: direction, so a transfer's receiver counts too) last seen then.
TOUCHED_SINCE: Final = (
    f"MATCH (a:{A.label}) WHERE a.created_at >= datetime({{epochMillis: $since}})\n"
    f"RETURN a.{A.key} AS account_id\n"
    "UNION\n"
    f"MATCH (a:{A.label})-[r:{_ACTIVITY_RELS}]-() WHERE r.last_seen >= datetime({{epochMillis: $since}})\n"
    "   OR r.at >= datetime({epochMillis: $since}) OR r.since >= datetime({epochMillis: $since})\n"
    f"RETURN a.{A.key} AS account_id"
)

#: The job's output for evaluation: every account's scores, label and creation time (keyset pages).
SCORED_ACCOUNTS_PAGE: Final = (
    f"MATCH (a:{A.label}) WHERE a.{A.key} > $after\n"
    f"WITH a ORDER BY a.{A.key} LIMIT $batch\n"
    f"RETURN a.{A.key} AS account_id, a.created_at.epochMillis AS created_at, a.risk_label AS label,\n"
    + ",\n".join(f"       a.{s.risk_property(t)} AS {t}" for t in s.THREATS)
    + ",\n       a.risk_run_id AS run_id, a.known_label AS known_label"
)

#: Benchmark baseline (bench/score.py): the same rows as :data:`WRITE_SCORES` written plainly — row maps, no
#: ledger, no ``prev_risk_*`` copies, no run record — to measure what those cost.
PLAIN_SCORE_WRITE: Final = (
    f"UNWIND $rows AS row\nMATCH (a:{A.label} {{{A.key}: row.key}})\nSET a += row.props\nRETURN count(*) AS written"
)
#: Accounts carrying a run's scores.
ACCOUNTS_OF_RUN: Final = f"MATCH (a:{A.label}) WHERE a.risk_run_id = $run_id RETURN count(a) AS n"
