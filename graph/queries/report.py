"""Cypher for ``ringwatch report``: the top active rings, and for chosen rings their members, shared
identifiers and money links.

Every per-ring query takes ``$ring_ids`` (a list) and returns a ``ring_id`` column, so one round trip serves
all the rings of a report. Members are found through ``MEMBER_OF`` relationships (the current grouping), not
the ring's ``members`` property. The latest completed scoring run comes from
:data:`graph.queries.scoring.RUNS`.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s
from graph.queries.rings import IP_BLOCK, LINK_RELS, MONEY_RELS

A, RING = s.ACCOUNT, s.RING
#: The ``status`` of a ring found by the latest grouping (``$status`` of :data:`TOP_RINGS`).
ACTIVE: Final = "active"

_DATETIMES = ("first_seen", "last_seen", "first_detected", "last_detected", "retired_at")
_RING_MAP = ", ".join(f"{p}: r.{p}.epochMillis" for p in _DATETIMES)

#: The ``$limit`` rings of status ``$status`` with the highest score (then size), datetimes as epoch ms.
TOP_RINGS: Final = (
    f"MATCH (r:{RING.label}) WHERE r.status = $status\n"
    f"RETURN r {{.*, {_RING_MAP}}} AS ring\n"
    f"ORDER BY r.score DESC, r.size DESC, r.{RING.key} LIMIT $limit"
)

#: How many rings have status ``$status``.
RING_COUNT: Final = f"MATCH (r:{RING.label}) WHERE r.status = $status RETURN count(r) AS rings"

#: Members of the rings ``$ring_ids``: scores per threat, overall score, label, reasons, labels, creation time.
RING_MEMBERS: Final = (
    "UNWIND $ring_ids AS ring_id\n"
    f"MATCH (a:{A.label})-[:{s.MEMBER_OF.type}]->(:{RING.label} {{{RING.key}: ring_id}})\n"
    f"RETURN ring_id, a.{A.key} AS account_id,\n"
    + "".join(f"       a.{s.risk_property(t)} AS {t},\n" for t in s.THREATS)
    + "       a.risk_score AS risk_score, a.risk_label AS risk_label, a.risk_reasons AS risk_reasons,\n"
    "       a.known_label AS known_label, a.verdict AS verdict, a.created_at.epochMillis AS created_at\n"
    f"ORDER BY ring_id, a.risk_score DESC, a.{A.key}"
)


def ring_identifiers(rel: s.RelSpec) -> str:
    """Identifiers of ``rel``'s target label that two or more members of a ring in ``$ring_ids`` use.

    Returns columns ``ring_id, label, key, members`` (the ring's members using it) and ``users`` (every
    account using it, from the node's degree).
    """
    n = rel.target
    return (
        "UNWIND $ring_ids AS ring_id\n"
        f"MATCH (:{RING.label} {{{RING.key}: ring_id}})<-[:{s.MEMBER_OF.type}]-(a:{A.label})"
        f"-[:{rel.type}]->(n:{n.label})\n"
        f"WITH ring_id, n, collect(DISTINCT a.{A.key}) AS members WHERE size(members) >= 2\n"
        f"RETURN ring_id, '{n.label}' AS label, toString(n.{n.key}) AS key, members,\n"
        f"       COUNT {{ (n)<-[:{rel.type}]-() }} AS users"
    )


#: Network blocks (``IP.prefix``) that two or more members of a ring used, with every account that used the
#: block; the same columns as :func:`ring_identifiers`, labelled :data:`graph.queries.rings.IP_BLOCK`.
RING_IP_BLOCKS: Final = (
    "UNWIND $ring_ids AS ring_id\n"
    f"MATCH (:{RING.label} {{{RING.key}: ring_id}})<-[:{s.MEMBER_OF.type}]-(a:{A.label})"
    f"-[:{s.USED_IP.type}]->(ip:{s.IP.label}) WHERE ip.prefix IS NOT NULL\n"
    f"WITH ring_id, ip.prefix AS prefix, collect(DISTINCT a.{A.key}) AS members WHERE size(members) >= 2\n"
    f"CALL (prefix) {{ MATCH (b:{A.label})-[:{s.USED_IP.type}]->(:{s.IP.label} {{prefix: prefix}})\n"
    "                 RETURN count(DISTINCT b) AS users }\n"
    f"RETURN ring_id, '{IP_BLOCK}' AS label, prefix AS key, members, users"
)

#: Shared identifiers of every account → identifier relationship that ties ring members, and network blocks.
RING_IDENTIFIERS: Final = "\nUNION ALL\n".join([*(ring_identifiers(rel) for rel in LINK_RELS), RING_IP_BLOCKS])

#: Transfers and referrals between two members of the same ring in ``$ring_ids`` (one row per relationship).
RING_MONEY_LINKS: Final = (
    "UNWIND $ring_ids AS ring_id\n"
    f"MATCH (r:{RING.label} {{{RING.key}: ring_id}})<-[:{s.MEMBER_OF.type}]-(a:{A.label})"
    f"-[m:{'|'.join(rel.type for rel in MONEY_RELS)}]->(b:{A.label})-[:{s.MEMBER_OF.type}]->(r)\n"
    "WHERE a <> b\n"
    f"RETURN ring_id, a.{A.key} AS src, b.{A.key} AS dst, type(m) AS type, m.asset AS asset,\n"
    "       coalesce(m.count, 1) AS count, m.total AS total\n"
    f"ORDER BY ring_id, src, dst, type"
)
