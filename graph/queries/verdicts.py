"""Cypher for investigator verdicts: each verdict is a ``(:Verdict)-[:ABOUT]->(:Account)`` node (the history),
and the latest is copied onto the account (``verdict``, ``verdict_threat``, …), where training reads it.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s

A, V = s.ACCOUNT, s.VERDICT

#: ``$threat`` may be null: then the account's current risk label, else its known label, when either is a
#: threat. Returns no row when the account does not exist.
RECORD_VERDICT: Final = (
    f"MATCH (a:{A.label} {{{A.key}: $account_id}})\n"
    "WITH a, coalesce($threat,\n"
    "                 CASE WHEN a.risk_label IN $threats THEN a.risk_label END,\n"
    "                 CASE WHEN a.known_label IN $threats THEN a.known_label END) AS threat\n"
    f"CREATE (v:{V.label} {{{V.key}: $verdict_id}})\n"
    "SET v.verdict = $verdict, v.threat = threat, v.note = $note, v.by = $by, v.at = datetime(),\n"
    "    v.risk_label = a.risk_label, v.risk_score = a.risk_score, v.risk_run_id = a.risk_run_id\n"
    f"CREATE (v)-[:{s.ABOUT.type}]->(a)\n"
    "SET a.verdict = $verdict, a.verdict_threat = threat, a.verdict_at = v.at, a.verdict_note = $note,\n"
    "    a.verdict_by = $by\n"
    f"RETURN a.{A.key} AS account_id, threat, a.risk_label AS risk_label, toString(v.at) AS at"
)

#: Whether an account exists, and the threat a confirmation would record.
ACCOUNT_FOR_VERDICT: Final = (
    f"MATCH (a:{A.label} {{{A.key}: $account_id}})\nRETURN a.risk_label AS risk_label, a.known_label AS known_label"
)
