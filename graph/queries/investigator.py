"""The investigator's query pack: the questions an investigator asks of a scored graph, as Cypher.

The same queries serve three ways: ``ringwatch investigate`` runs them through the driver; the pack file
``graph/queries/investigator_pack.cypher`` (generated from this module by ``ringwatch query-pack``; a test
keeps the checked-in copy equal) is pasted into Neo4j Browser as is; and ``ringwatch query-pack --out DIR``
writes one ``.cypher`` file per query, which Browser imports as favourites (drag the files onto the
Favorites drawer). In Browser, set a query's parameters first, e.g. ``:param account_id => 'acc_000042'``.

Labels, relationship types and the schema's fixed values (``clear``, verdict names) come from
:mod:`graph.schema`; everything an investigator supplies is a ``$parameter``. Identifiers used by more than
``EVIDENCE_CAP`` (:mod:`graph.supernodes`) accounts are left out of "what they share" answers, as in ring grouping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from graph import schema as s
from graph.supernodes import EVIDENCE_CAP

A, RING, VERDICT = s.ACCOUNT, s.RING, s.VERDICT
_SHARED = "|".join(
    r.type for r in (s.USED_DEVICE, s.USED_CARD, s.USED_IP, s.WITHDREW_TO, s.HAS_EMAIL, s.HAS_PHONE, s.REDEEMED)
)
_PAYMENT = "|".join(r.type for r in (s.USED_CARD, s.USED_DEVICE, s.WITHDREW_TO))
_KEY = "coalesce(" + ", ".join(f"n.{spec.key}" for spec in s.IDENTIFIER_NODES) + ")"
_RISKY = f"(b.risk_label IS NOT NULL AND b.risk_label <> '{s.CLEAR}' OR b.known_label IN {list(s.THREATS)!r})"


@dataclass(frozen=True)
class PackQuery:
    """One question: a name, what it answers, its parameters (with an example value) and its Cypher."""

    name: str
    title: str
    description: str
    params: dict[str, Any]
    cypher: str

    def as_file(self) -> str:
        """The query as a Browser favourite: a title comment first, then how to set its parameters."""
        lines = [f"// {self.title}", f"// {self.description}"]
        lines += [f"// :param {k} => {v!r}" for k, v in self.params.items()]
        return "\n".join(lines) + "\n" + self.cypher + ";\n"


WHY_FLAGGED: Final = PackQuery(
    "why_flagged",
    "Why is this account flagged?",
    "Its scores, label and stored reasons; what it shares with risky accounts now; its ring and verdict.",
    {"account_id": "acc_000042"},
    f"MATCH (a:{A.label} {{{A.key}: $account_id}})\n"
    f"OPTIONAL MATCH (a)-[:{_SHARED}]->(n)<-[:{_SHARED}]-(b:{A.label})\n"
    f"WHERE b <> a AND {_RISKY} AND COUNT {{ (n)<--() }} <= {EVIDENCE_CAP}\n"
    f"WITH a, n, collect(DISTINCT b.{A.key}) AS risky_peers\n"
    "WITH a, collect(CASE WHEN n IS NULL THEN null ELSE\n"
    f"       {{identifier: labels(n)[0] + ' ' + {_KEY}, users: COUNT {{ (n)<--() }}, risky_peers: risky_peers}}"
    " END) AS shared\n"
    f"OPTIONAL MATCH (a)-[:{s.MEMBER_OF.type}]->(r:{RING.label} {{status: 'active'}})\n"
    f"OPTIONAL MATCH (run:{s.SCORING_RUN.label} {{{s.SCORING_RUN.key}: a.risk_run_id}})\n"
    f"RETURN a.{A.key} AS account_id, a.risk_label AS label, a.risk_score AS score,\n"
    + "".join(f"       a.{s.risk_property(t)} AS {t},\n" for t in s.THREATS)
    + "       a.risk_reasons AS reasons, a.risk_model_version AS model_version, a.risk_run_id AS run_id,\n"
    "       a.risk_flagged_by AS flagged_by, run.policy AS policy,\n"
    + "".join(f"       run.threshold_{t} AS threshold_{t},\n" for t in s.THREATS)
    + "       a.known_label AS known_label, a.verdict AS verdict, r.ring_id AS ring_id, r.kind AS ring_kind,\n"
    "       shared",
)

RING_OF_ACCOUNT: Final = PackQuery(
    "ring_of_account",
    "Everyone in this account's ring, and what they share",
    "One row per member: label, score, and the identifiers it shares with other members of the ring.",
    {"account_id": "acc_000042"},
    f"MATCH (:{A.label} {{{A.key}: $account_id}})-[:{s.MEMBER_OF.type}]->(r:{RING.label} {{status: 'active'}})\n"
    f"MATCH (m:{A.label})-[:{s.MEMBER_OF.type}]->(r)\n"
    f"OPTIONAL MATCH (m)-[:{_SHARED}]->(n)<-[:{_SHARED}]-(o:{A.label})-[:{s.MEMBER_OF.type}]->(r)\n"
    "WHERE o <> m\n"
    "WITH r, m, collect(DISTINCT labels(n)[0] + ' ' + " + _KEY + ") AS shares\n"
    f"OPTIONAL MATCH (m)-[t:{s.TRANSFERRED_TO.type}]-(o2:{A.label})-[:{s.MEMBER_OF.type}]->(r)\n"
    f"RETURN r.ring_id AS ring_id, r.kind AS kind, r.size AS size, m.{A.key} AS member,\n"
    "       m.risk_label AS label, m.risk_score AS score, shares,\n"
    f"       count(DISTINCT o2) AS transfer_partners_in_ring\n"
    "ORDER BY score DESC, member",
)

TOP_RINGS: Final = PackQuery(
    "top_rings",
    "Top rings by score",
    "Active rings, highest mean member risk first: kind, size, activity span, evidence.",
    {"limit": 20},
    f"MATCH (r:{RING.label} {{status: 'active'}})\n"
    "RETURN r.ring_id AS ring_id, r.kind AS kind, r.size AS size, r.score AS score,\n"
    "       toString(date(r.first_seen)) AS first_seen, toString(date(r.last_seen)) AS last_seen,\n"
    "       toString(r.first_detected) AS first_detected, r.evidence AS evidence\n"
    "ORDER BY score DESC, size DESC, ring_id LIMIT $limit",
)

NEW_RINGS_SINCE: Final = PackQuery(
    "new_rings_since",
    "New rings since a date",
    "Rings first detected on or after the date (ISO, e.g. 2026-11-01), newest first.",
    {"since": "2026-11-01"},
    f"MATCH (r:{RING.label} {{status: 'active'}}) WHERE r.first_detected >= datetime($since)\n"
    "RETURN r.ring_id AS ring_id, r.kind AS kind, r.size AS size, r.score AS score,\n"
    "       toString(r.first_detected) AS first_detected, r.evidence AS evidence\n"
    "ORDER BY r.first_detected DESC, score DESC",
)

SHARED_PAYMENT_IDS: Final = PackQuery(
    "shared_payment_ids",
    "Accounts sharing a card, device or wallet with this account",
    "Each other account, what it shares, and its risk.",
    {"account_id": "acc_000042"},
    f"MATCH (x:{A.label} {{{A.key}: $account_id}})-[:{_PAYMENT}]->(n)<-[:{_PAYMENT}]-(b:{A.label})\n"
    "WHERE b <> x\n"
    f"RETURN b.{A.key} AS account_id, labels(n)[0] AS kind, {_KEY} AS identifier,\n"
    "       COUNT { (n)<--() } AS users, b.risk_label AS label, b.risk_score AS score, b.known_label AS known_label\n"
    "ORDER BY score DESC, account_id",
)

FALSE_POSITIVES: Final = PackQuery(
    "false_positives",
    "Accounts marked as false positives",
    "Every false-positive verdict, newest first, with the account's current label and the investigator's note.",
    {},
    f"MATCH (v:{VERDICT.label} {{verdict: '{s.FALSE_POSITIVE}'}})-[:{s.ABOUT.type}]->(a:{A.label})\n"
    f"RETURN a.{A.key} AS account_id, a.risk_label AS label, a.risk_score AS score, v.threat AS flagged_as,\n"
    "       v.note AS note, v.by AS by, toString(v.at) AS at, a.verdict = v.verdict AS still_current\n"
    "ORDER BY v.at DESC",
)

SCORING_RUNS: Final = PackQuery(
    "scoring_runs",
    "Scoring runs (a 'running' one that is old was killed: rerun `ringwatch score`)",
    "Every run with its model, status, counts and times.",
    {},
    f"MATCH (r:{s.SCORING_RUN.label})\n"
    "RETURN r.run_id AS run_id, r.status AS status, r.model_version AS model, r.written AS written,\n"
    "       r.flagged AS flagged, r.label_changes AS label_changes, r.rings AS rings,\n"
    "       toString(r.started_at) AS started, toString(r.finished_at) AS finished\n"
    "ORDER BY r.started_at DESC",
)

OPEN_ALERTS: Final = PackQuery(
    "open_alerts",
    "Open monitoring alerts (drift, efficacy, data quality, job health)",
    "Alerts raised by `ringwatch monitor` and not resolved by a later run, most severe and newest first.",
    {},
    f"MATCH (x:{s.ALERT.label} {{status: 'open'}})\n"
    "RETURN x.alert_id AS alert_id, x.rule AS rule, x.severity AS severity, x.subject AS subject,\n"
    "       x.observed AS observed, x.threshold AS threshold, x.message AS message, x.run_id AS run_id,\n"
    "       toString(x.at) AS at, x.delivery AS delivery\n"
    "ORDER BY CASE x.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, x.at DESC",
)

PACK: Final = (
    WHY_FLAGGED,
    RING_OF_ACCOUNT,
    TOP_RINGS,
    NEW_RINGS_SINCE,
    SHARED_PAYMENT_IDS,
    FALSE_POSITIVES,
    SCORING_RUNS,
    OPEN_ALERTS,
)
PACK_BY_NAME: Final = {q.name: q for q in PACK}


def pack_file() -> str:
    """The whole pack as one file, pasteable into Browser (statements end with ``;``)."""
    header = (
        "// ringwatch investigator query pack — generated from graph/queries/investigator.py by\n"
        "// `ringwatch query-pack`; do not edit by hand. Set parameters first, e.g.\n"
        "// :param account_id => 'acc_000042'\n\n"
    )
    return header + "\n".join(q.as_file() for q in PACK)
