"""Cypher for ring grouping: read the candidates and what ties them; write ``Ring`` nodes, memberships and
the ring members a grouping flags.

Only candidates (flagged, known fraud, or with an elevated score; see ``serving.ring_links``) are read, so
grouping costs what that set costs, not the whole graph. An identifier is returned when two or more
candidates use it and they are at least ``$min_share`` of its users (a carrier NAT's address or a campaign
code is used mostly by others); its user count comes from the node's degree, which Neo4j keeps without
reading relationships.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s

A, RING = s.ACCOUNT, s.RING
#: Account → identifier relationships that tie ring members together.
LINK_RELS: Final = (s.USED_DEVICE, s.USED_CARD, s.USED_IP, s.WITHDREW_TO, s.HAS_EMAIL, s.HAS_PHONE, s.REDEEMED)
#: Account → account relationships that tie ring members together.
MONEY_RELS: Final = (s.TRANSFERRED_TO, s.REFERRED)

#: Every reason ring grouping adds starts with this, so a regrouping can take it back off.
RING_REASON_PREFIX: Final = "member of ring "

_SCORE_FLAGGED = "a.risk_label <> $clear AND coalesce(a.risk_flagged_by, $by_score) = $by_score"
_ELEVATED = " OR ".join(f"a.{s.risk_property(t)} >= $floors.{s.risk_property(t)}" for t in s.THREATS)

#: The columns of a candidate row, for the account ``a`` (see ``serving.ring_links.ACCOUNT_COLUMNS``).
_ACCOUNT_ROW = (
    "OPTIONAL MATCH (a)-[r]->() WHERE r.last_seen IS NOT NULL\n"
    "WITH a, min(r.first_seen) AS first_seen, max(r.last_seen) AS last_seen\n"
    f"RETURN a.{A.key} AS account_id,\n"
    f"       CASE WHEN {_SCORE_FLAGGED} THEN a.risk_label ELSE $clear END AS label, a.risk_score AS score,\n"
    + "".join(f"       a.{s.risk_property(t)} AS {t},\n" for t in s.THREATS)
    + "       a.known_label AS known_label, a.verdict AS verdict, a.risk_run_id AS run_id,\n"
    "       coalesce(first_seen, a.created_at).epochMillis AS first_seen,\n"
    "       coalesce(last_seen, a.created_at).epochMillis AS last_seen,\n"
    "       a.created_at.epochMillis AS created_at\n"
    "ORDER BY account_id"
)

#: Ring grouping's candidates (see ``serving.ring_links``): flagged on their own score, known fraud, or with a
#: threat score at least its floor (``$floors``: ``risk_<threat>`` → score). ``label`` is the account's own
#: label: an account flagged by an earlier grouping counts as ``clear`` here. ``$by_score``:
#: :data:`graph.schema.FLAGGED_BY_SCORE` (``risk_flagged_by``, written by the scoring job).
CANDIDATE_ACCOUNTS: Final = (
    f"MATCH (a:{A.label}) WHERE a.risk_label IS NOT NULL\n"
    f"  AND (({_SCORE_FLAGGED}) OR a.known_label IN $threats OR a.verdict = $confirmed OR {_ELEVATED})\n" + _ACCOUNT_ROW
)

#: Known-benign accounts (a ``$benign`` label or a ``$false_positive`` verdict) created at or after ``$after``
#: (epoch ms; the model did not train on them): the sample ring grouping estimates its false-positive rate on.
COUNT_KNOWN_BENIGN: Final = (
    f"MATCH (a:{A.label}) WHERE (a.known_label = $benign OR a.verdict = $false_positive)\n"
    "  AND a.created_at >= datetime({epochMillis: $after})\n"
    "RETURN count(a) AS n"
)

#: The same rows for the accounts ``$ids`` (the neighbours a ring's expansion considers).
ACCOUNTS_BY_ID: Final = f"MATCH (a:{A.label}) WHERE a.{A.key} IN $ids\n" + _ACCOUNT_ROW


#: The ``$q`` quantile of the accounts' margins (largest threat score over its threshold; ``$thresholds``:
#: ``risk_<threat>`` → threshold), nearest-rank: no more than a share ``1 - $q`` of accounts lies above it.
MARGIN_QUANTILE: Final = (
    f"MATCH (a:{A.label}) WHERE a.risk_score IS NOT NULL\n"
    "WITH reduce(m = 0.0, t IN keys($thresholds) | CASE WHEN coalesce(a[t], 0.0) / $thresholds[t] > m\n"
    "     THEN coalesce(a[t], 0.0) / $thresholds[t] ELSE m END) AS margin\n"
    "RETURN percentileDisc(margin, $q) AS floor, count(*) AS accounts"
)


def _users(rel: s.RelSpec) -> str:
    # Distinct accounts: a wallet withdrawn to in two assets has two relationships from one account.
    if rel.discriminator:
        return f"COUNT {{ MATCH (b:{A.label})-[:{rel.type}]->(n) RETURN DISTINCT b }}"
    return f"COUNT {{ (n)<-[:{rel.type}]-() }}"


def shared_identifiers(rel: s.RelSpec) -> str:
    """Identifiers of ``rel``'s target label used by two or more of the candidates ``$ids``, with their user
    counts, kept when candidates are at least ``$min_share`` of their users."""
    n = rel.target
    return (
        f"MATCH (a:{A.label})-[:{rel.type}]->(n:{n.label}) WHERE a.{A.key} IN $ids\n"
        f"WITH n, collect(DISTINCT a.{A.key}) AS members WHERE size(members) >= 2\n"
        f"WITH n, members, {_users(rel)} AS users WHERE size(members) >= $min_share * users\n"
        f"RETURN '{n.label}' AS label, n.{n.key} AS key, members, users"
    )


#: Label of the derived identifier "network block" (an IPv4 /24 or IPv6 /48, ``IP.prefix``).
IP_BLOCK: Final = "IPBlock"

#: Network blocks two or more candidates used, with the number of accounts that used the block (same rule).
#: Bot farms sign up from many hosts of a few blocks, so no single IP ties them, the block does.
SHARED_IP_BLOCKS: Final = (
    f"MATCH (a:{A.label})-[:{s.USED_IP.type}]->(ip:{s.IP.label}) WHERE a.{A.key} IN $ids AND ip.prefix IS NOT NULL\n"
    f"WITH ip.prefix AS prefix, collect(DISTINCT a.{A.key}) AS members WHERE size(members) >= 2\n"
    f"CALL (prefix) {{ MATCH (b:{A.label})-[:{s.USED_IP.type}]->(:{s.IP.label} {{prefix: prefix}})\n"
    "                 RETURN count(DISTINCT b) AS users }\n"
    "WITH prefix, members, users WHERE size(members) >= $min_share * users\n"
    f"RETURN '{IP_BLOCK}' AS label, prefix AS key, members, users"
)

#: Transfers (one per direction and asset) and referrals between two candidates.
MONEY_LINKS: Final = (
    f"MATCH (a:{A.label})-[r:{'|'.join(m.type for m in MONEY_RELS)}]->(b:{A.label})\n"
    f"WHERE a.{A.key} IN $ids AND b.{A.key} IN $ids AND a <> b\n"
    f"RETURN a.{A.key} AS src, b.{A.key} AS dst, type(r) AS type, coalesce(r.count, 1) AS count\n"
    "ORDER BY src, dst, type"
)

_LINK_TYPES = "|".join(rel.type for rel in LINK_RELS)
#: The label and the business key of an identifier node ``n`` of :data:`LINK_RELS`.
_IDENTIFIER_LABEL = "CASE " + " ".join(f"WHEN n:{r.target.label} THEN '{r.target.label}'" for r in LINK_RELS) + " END"
_IDENTIFIER_KEY = "CASE " + " ".join(f"WHEN n:{r.target.label} THEN n.{r.target.key}" for r in LINK_RELS) + " END"

#: Accounts tied to the ring members ``$members`` through an identifier that at most ``$max_users`` accounts
#: use (the expansion of a detected ring, ``serving.ring_grouping.joining_members``): one row per (account,
#: member, identifier: ``via`` its label, ``key`` its business key) — every user of the identifier, so the
#: rows of one identifier hold all its users. Each identifier is checked once, however many members use it,
#: and its users are counted only up to ``$max_users + 1`` — a campaign code thousands redeemed costs what a
#: small one costs.
IDENTIFIER_NEIGHBOURS: Final = (
    "UNWIND $members AS m\n"
    f"MATCH (a:{A.label} {{{A.key}: m}})-[:{_LINK_TYPES}]->(n)\n"
    "WITH n, collect(DISTINCT a) AS users_in_ring\n"
    f"WHERE COUNT {{ MATCH (u:{A.label})-[:{_LINK_TYPES}]->(n) WITH DISTINCT u LIMIT $max_users + 1 RETURN u }}\n"
    "      <= $max_users\n"
    f"MATCH (n)<-[:{_LINK_TYPES}]-(b:{A.label})\n"
    "UNWIND users_in_ring AS a\n"
    "WITH a, b, n WHERE b <> a\n"
    f"RETURN DISTINCT b.{A.key} AS account_id, a.{A.key} AS member, {_IDENTIFIER_LABEL} AS via,\n"
    f"       toString({_IDENTIFIER_KEY}) AS key"
)

#: Accounts tied to the ring members ``$members`` by a transfer or a referral, either way (``via``: its type;
#: ``key`` empty).
MONEY_NEIGHBOURS: Final = (
    "UNWIND $members AS m\n"
    f"MATCH (a:{A.label} {{{A.key}: m}})-[r:{'|'.join(rel.type for rel in MONEY_RELS)}]-(b:{A.label}) WHERE b <> a\n"
    f"RETURN DISTINCT b.{A.key} AS account_id, m AS member, type(r) AS via, '' AS key"
)

#: Flag ring members that were not flagged on their own score (``$members``: ``{account_id, label,
#: reason}``); an earlier ring reason is replaced.
FLAG_RING_MEMBERS: Final = (
    "UNWIND $members AS m\n"
    f"MATCH (a:{A.label} {{{A.key}: m.account_id}})\n"
    "SET a.risk_label = m.label, a.risk_flagged_by = $by_ring, a.risk_rings_run_id = $rings_run_id,\n"
    "    a.risk_reasons = [m.reason] + [x IN coalesce(a.risk_reasons, []) WHERE NOT x STARTS WITH $prefix]\n"
    "RETURN count(a) AS flagged"
)

#: After a grouping: accounts an earlier grouping flagged and this one did not go back to ``clear``.
UNFLAG_STALE_MEMBERS: Final = (
    f"MATCH (a:{A.label}) WHERE a.risk_flagged_by = $by_ring AND a.risk_rings_run_id <> $rings_run_id\n"
    "SET a.risk_label = $clear, a.risk_flagged_by = $by_score,\n"
    "    a.risk_reasons = [x IN coalesce(a.risk_reasons, []) WHERE NOT x STARTS WITH $prefix]\n"
    "RETURN count(a) AS unflagged"
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
    "    r.first_seen = datetime({epochMillis: ring.first_seen}),\n"
    "    r.last_seen = datetime({epochMillis: ring.last_seen})\n"
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
