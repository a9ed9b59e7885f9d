"""Cypher for model governance: a challenger's shadow scores, and the audit trail of promotions.

A challenger in shadow (``ringwatch score --challenger``) writes only :data:`graph.schema.CHALLENGER_PROPERTIES`
on each account, in batches through :class:`graph.writer.BatchWriter` (the ``ScoreBatch`` ledger, batch ids
``<run>/challenger/<n>``): ``risk_*``, ``prev_risk_*`` and rings are never touched. An account shows a
challenger's scores only while they belong to its current run (``challenger_run_id = risk_run_id``).

Every ``ringwatch promote`` — done, forced past a failed gate, or refused — leaves a ``(:Promotion)`` node.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s
from graph.queries.ingest import ROWS_PARAM, Prop, WriteKind

A = s.ACCOUNT
P = s.PROMOTION

#: Columns of a challenger batch.
CHALLENGER_COLUMNS: Final = ("account_id", *s.THREATS, "score", "label", "disagrees")


def _challenger_write() -> WriteKind:
    rows = f"${ROWS_PARAM}"
    threat_sets = ", ".join(f"a.challenger_{t} = {rows}.{t}[i]" for t in s.THREATS)
    cypher = (
        f"UNWIND range(0, size({rows}.{A.key}) - 1) AS i\n"
        f"MATCH (a:{A.label} {{{A.key}: {rows}.{A.key}[i]}})\n"
        f"SET {threat_sets},\n"
        f"    a.challenger_score = {rows}.score[i], a.challenger_label = {rows}.label[i],\n"
        f"    a.challenger_disagrees = {rows}.disagrees[i],\n"
        "    a.challenger_model_version = $model_version, a.challenger_run_id = $run_id\n"
        "RETURN count(*) AS written"
    )
    props = tuple(Prop(c) for c in CHALLENGER_COLUMNS[1:])
    return WriteKind("AccountChallenger", cypher, (A.key,), props, node=A)


#: The challenger's write: ``$rows`` (columns of :data:`CHALLENGER_COLUMNS`), ``$run_id``, ``$model_version``.
WRITE_CHALLENGER: Final = _challenger_write()

#: What the graph knows of accounts' truth now: known label and latest verdict (``$account_ids``).
ACCOUNT_EVIDENCE: Final = (
    f"UNWIND $account_ids AS id MATCH (a:{A.label} {{{A.key}: id}})\n"
    f"RETURN a.{A.key} AS account_id, a.known_label AS known_label, a.verdict AS verdict"
)

#: An account's challenger scores, when the challenger scored its current run (no row otherwise).
CHALLENGER_OF_ACCOUNT: Final = (
    f"MATCH (a:{A.label} {{{A.key}: $account_id}})\n"
    "WHERE a.challenger_run_id IS NOT NULL AND a.challenger_run_id = a.risk_run_id\n"
    "RETURN a.challenger_model_version AS model_version, a.challenger_label AS label,\n"
    "       a.challenger_score AS score, a.challenger_disagrees AS disagrees,\n"
    + ",\n".join(f"       a.challenger_{t} AS {t}" for t in s.THREATS)
)

#: One audit record: ``$promotion_id`` and ``$props`` (model_version, previous, outcome, forced, by, reason,
#: gate, gate_reasons); ``at`` is the server's time.
RECORD_PROMOTION: Final = (
    f"CREATE (p:{P.label} {{{P.key}: $promotion_id}})\n"
    "SET p += $props, p.at = datetime()\n"
    f"RETURN p.{P.key} AS promotion_id, toString(p.at) AS at"
)

#: The audit trail, newest first (``$limit``).
PROMOTIONS: Final = (
    f"MATCH (p:{P.label})\n"
    "RETURN p {.*, at: toString(p.at)} AS promotion\n"
    f"ORDER BY p.at DESC, p.{P.key} DESC LIMIT $limit"
)
