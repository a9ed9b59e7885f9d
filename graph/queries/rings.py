"""Cypher for ring grouping: read the flagged accounts and what ties them; write ``Ring`` nodes and memberships.

Only flagged accounts (``risk_label`` other than ``clear``) are read, so grouping costs what the flagged
set costs, not the whole graph. An identifier is returned only when at least two flagged accounts use it
and no more than ``$cap`` accounts use it in all (the super-node rule of :mod:`serving.reasons`); its user
count comes from the node's degree, which Neo4j keeps without reading relationships.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s

A, RING = s.ACCOUNT, s.RING
#: Account → identifier relationships that tie ring members together.
LINK_RELS: Final = (s.USED_DEVICE, s.USED_CARD, s.USED_IP, s.WITHDREW_TO, s.HAS_EMAIL, s.HAS_PHONE, s.REDEEMED)
#: Account → account relationships that tie ring members together.
MONEY_RELS: Final = (s.TRANSFERRED_TO, s.REFERRED)

_FLAGGED = "a.risk_label IS NOT NULL AND a.risk_label <> $clear"

#: Every flagged account with its scores and activity span (epoch ms).
FLAGGED_ACCOUNTS: Final = (
    f"MATCH (a:{A.label}) WHERE {_FLAGGED}\n"
    "OPTIONAL MATCH (a)-[r]->() WHERE r.last_seen IS NOT NULL\n"
    f"WITH a, min(r.first_seen) AS first_seen, max(r.last_seen) AS last_seen\n"
    f"RETURN a.{A.key} AS account_id, a.risk_label AS label, a.risk_score AS score,\n"
    "       a.known_label AS known_label, a.verdict AS verdict, a.risk_run_id AS run_id,\n"
    "       coalesce(first_seen, a.created_at).epochMillis AS first_seen,\n"
    "       coalesce(last_seen, a.created_at).epochMillis AS last_seen"
)


def shared_identifiers(rel: s.RelSpec) -> str:
    """Identifiers of ``rel``'s target label shared by two or more flagged accounts, with their user counts."""
    n = rel.target
    return (
        f"MATCH (a:{A.label})-[:{rel.type}]->(n:{n.label}) WHERE {_FLAGGED}\n"
        f"WITH n, collect(DISTINCT a.{A.key}) AS members WHERE size(members) >= 2\n"
        f"WITH n, members, COUNT {{ (n)<-[:{rel.type}]-() }} AS users WHERE users <= $cap\n"
        f"RETURN '{n.label}' AS label, n.{n.key} AS key, members, users"
    )


#: Label of the derived identifier "network block" (an IPv4 /24 or IPv6 /64, ``IP.prefix``).
IP_BLOCK: Final = "IPBlock"

#: Network blocks that two or more flagged accounts used, with the number of accounts that used the block.
#: Bot farms sign up from many hosts of a few blocks, so no single IP ties them, the block does.
SHARED_IP_BLOCKS: Final = (
    f"MATCH (a:{A.label})-[:{s.USED_IP.type}]->(ip:{s.IP.label}) WHERE {_FLAGGED} AND ip.prefix IS NOT NULL\n"
    f"WITH ip.prefix AS prefix, collect(DISTINCT a.{A.key}) AS members WHERE size(members) >= 2\n"
    f"CALL (prefix) {{ MATCH (b:{A.label})-[:{s.USED_IP.type}]->(:{s.IP.label} {{prefix: prefix}})\n"
    "                 RETURN count(DISTINCT b) AS users }\n"
    f"WITH prefix, members, users WHERE users <= $cap\n"
    f"RETURN '{IP_BLOCK}' AS label, prefix AS key, members, users"
)

#: Transfers and referrals between two flagged accounts.
MONEY_LINKS: Final = (
    f"MATCH (a:{A.label})-[r:{'|'.join(m.type for m in MONEY_RELS)}]->(b:{A.label})\n"
    f"WHERE {_FLAGGED} AND b.risk_label IS NOT NULL AND b.risk_label <> $clear AND a <> b\n"
    f"RETURN a.{A.key} AS src, b.{A.key} AS dst, type(r) AS type, coalesce(r.count, 1) AS count"
)

#: The rings of the last grouping, for keeping ids stable.
ACTIVE_RINGS: Final = (
    f"MATCH (r:{RING.label}) WHERE r.status = 'active'\n"
    f"RETURN r.{RING.key} AS ring_id, r.members AS members, r.first_detected.epochMillis AS first_detected"
)

#: ``$rings``: list of maps with the ring's properties (see ``serving.rings.DetectedRing.props``).
WRITE_RINGS: Final = (
    "UNWIND $rings AS ring\n"
    f"MERGE (r:{RING.label} {{{RING.key}: ring.ring_id}})\n"
    "ON CREATE SET r.first_detected = datetime({epochMillis: $now})\n"
    "SET r += ring, r.status = 'active', r.rings_run_id = $rings_run_id, r.scoring_run_id = $scoring_run_id,\n"
    "    r.last_detected = datetime({epochMillis: $now}),\n"
    "    r.first_seen = datetime({epochMillis: ring.first_seen}), r.last_seen = datetime({epochMillis: ring.last_seen})\n"
    "RETURN count(*) AS written"
)

#: ``$members``: list of ``{account_id, ring_id}``.
WRITE_MEMBERS: Final = (
    "UNWIND $members AS m\n"
    f"MATCH (a:{A.label} {{{A.key}: m.account_id}})\n"
    f"MATCH (r:{RING.label} {{{RING.key}: m.ring_id}})\n"
    f"MERGE (a)-[e:{s.MEMBER_OF.type}]->(r)\n"
    "SET e.rings_run_id = $rings_run_id\n"
    "RETURN count(*) AS written"
)

#: After a grouping: memberships it did not write are dropped, rings it did not write are retired
#: (kept, with their last members in ``r.members``, so history survives).
RETIRE_STALE: Final = (
    f"MATCH (:{A.label})-[e:{s.MEMBER_OF.type}]->(:{RING.label}) WHERE e.rings_run_id <> $rings_run_id\n"
    "DELETE e\n"
    "WITH count(*) AS dropped\n"
    f"MATCH (r:{RING.label}) WHERE r.status = 'active' AND r.rings_run_id <> $rings_run_id\n"
    "SET r.status = 'retired', r.retired_at = datetime()\n"
    "RETURN count(r) AS retired"
)

#: The members of the active rings (evaluation, reports).
RING_MEMBERS: Final = (
    f"MATCH (a:{A.label})-[:{s.MEMBER_OF.type}]->(r:{RING.label}) WHERE r.status = 'active'\n"
    f"RETURN a.{A.key} AS account_id, r.{RING.key} AS ring_id"
)
