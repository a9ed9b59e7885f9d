"""Cypher for online scoring: an account's receptive field, and the graph-wide tallies its features compare with.

The field is read in rounds (:func:`graph.receptive_field.read_receptive_field` decides which nodes each round
asks for): :data:`INCIDENT_EDGES` returns every relationship of the given accounts (``$out``: by type, the
accounts whose outgoing relationships to read) and into the given nodes (``$in``: by type, the target keys whose
incoming relationships to read) — except into an identifier with more than ``$cap`` distinct accounts, a
super-node the model's sampler does not expand either (:data:`graph.supernodes.MODEL_SUPERNODE_CAP`).
:data:`NODE_ROWS` returns the nodes' rows, :data:`REFERRAL_ANCESTORS` the accounts up an account's referral chain.

Rows come back with the export's columns and projections (:mod:`graph.queries.export`), so the frames they make
are the frames a full export holds for the same elements, and the batch job's feature code reads them unchanged.
Every id travels as a ``$parameter``; labels and types come from :mod:`graph.schema`.

:func:`population_queries` are the tallies of :class:`gnn.features.Population` (whole-graph scans: read at
start-up and on reload, not per request).
"""

from __future__ import annotations

from typing import Final

from graph import schema as s
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS, _project

#: Longest referral chain followed up from an account (referral depth is a feature).
MAX_REFERRAL_DEPTH: Final = 32


def _rel_row(export_index: int) -> str:
    export = REL_EXPORTS[export_index]
    rel = export.rel
    sources = {"src": f"a.{rel.source.key}", "dst": f"b.{rel.target.key}"}
    return "[" + ", ".join(sources.get(c.name) or _project("r", c) for c in export.columns) + "]"


def _incident_edges() -> str:
    branches = []
    for i, export in enumerate(REL_EXPORTS):
        rel = export.rel
        src, dst = rel.source, rel.target
        row = _rel_row(i)
        branches.append(
            f"UNWIND coalesce($out.{rel.type}, []) AS id\n"
            f"MATCH (a:{src.label} {{{src.key}: id}})-[r:{rel.type}]->(b:{dst.label})\n"
            f"RETURN '{rel.type}' AS type, collect({row}) AS rows"
        )
        hub = (
            ""
            if dst == s.ACCOUNT
            else (
                f"WHERE COUNT {{ (b)<-[:{rel.type}]-() }} <= $cap\n"
                f"   OR COUNT {{ MATCH (x:{src.label})-[:{rel.type}]->(b) WITH DISTINCT x RETURN x }} <= $cap\n"
            )
        )
        branches.append(
            f"UNWIND coalesce($in.{rel.type}, []) AS id\n"
            f"MATCH (b:{dst.label} {{{dst.key}: id}})\n{hub}"
            f"MATCH (a:{src.label})-[r:{rel.type}]->(b)\n"
            f"RETURN '{rel.type}' AS type, collect({row}) AS rows"
        )
    return "\nUNION ALL\n".join(branches)


def _node_rows() -> str:
    branches = []
    for export in NODE_EXPORTS:
        node = export.node
        row = "[" + ", ".join(_project("n", c) for c in export.columns) + "]"
        branches.append(
            f"UNWIND coalesce($keys.{node.label}, []) AS id\n"
            f"MATCH (n:{node.label} {{{node.key}: id}})\n"
            f"RETURN '{node.label}' AS label, collect({row}) AS rows"
        )
    return "\nUNION ALL\n".join(branches)


#: Relationships out of ``$out[type]`` accounts and into ``$in[type]`` nodes (not super-nodes: ``$cap``).
#: Returns ``type`` and ``rows`` (lists of the export's columns of that type, in order), a record per branch.
INCIDENT_EDGES: Final = _incident_edges()
#: The rows of ``$keys[label]`` nodes: ``label`` and ``rows`` (lists of the export's columns of that label).
NODE_ROWS: Final = _node_rows()
#: Every account up the referral chains of ``$accounts`` (any referrer, up to :data:`MAX_REFERRAL_DEPTH`).
REFERRAL_ANCESTORS: Final = (
    f"UNWIND $accounts AS id\n"
    f"MATCH (b:{s.ACCOUNT.label} {{{s.ACCOUNT.key}: id}})<-[:{s.REFERRED.type}*1..{MAX_REFERRAL_DEPTH}]-"
    f"(up:{s.ACCOUNT.label})\n"
    f"RETURN collect(DISTINCT up.{s.ACCOUNT.key}) AS ancestors"
)
#: One cheap read to tell the server answers (``/readyz``).
PING: Final = "RETURN 1 AS ok"


def _per_event(rel: str) -> str:
    return f"coalesce({rel}.total, 0.0) / CASE WHEN coalesce({rel}.count, 0) < 1 THEN 1.0 ELSE toFloat({rel}.count) END"


def population_queries(label_prefixes: tuple[str, ...]) -> dict[str, str]:
    """The tallies of :class:`gnn.features.Population` and the data's latest time, one query each.

    Args:
        label_prefixes: datetime columns whose names start with one of these (label times) are left out of the
            latest time, as the batch job's reference time leaves them out.

    Returns:
        name → Cypher. ``accounts``/``cards``: ``n``; ``countries``/``email_domains``/``card_bins``: ``value``,
        ``n`` rows; ``typical_<TYPE>``: ``asset``, ``median`` rows; ``created``: ``created`` (a list);
        ``signup_prefixes``: ``prefix``, ``created`` rows; ``latest``: ``latest`` (epoch ms or null).
    """
    a = s.ACCOUNT
    out = {
        "accounts": f"MATCH (n:{a.label}) RETURN count(n) AS n",
        "countries": f"MATCH (n:{a.label}) WHERE n.country IS NOT NULL RETURN n.country AS value, count(*) AS n",
        "email_domains": (
            f"MATCH (n:{a.label}) WHERE n.email_domain IS NOT NULL RETURN n.email_domain AS value, count(*) AS n"
        ),
        "cards": f"MATCH (n:{s.CARD.label}) RETURN count(n) AS n",
        "card_bins": f"MATCH (n:{s.CARD.label}) WHERE n.bin IS NOT NULL RETURN n.bin AS value, count(*) AS n",
        "created": (
            f"MATCH (n:{a.label}) WHERE n.created_at IS NOT NULL RETURN collect(n.created_at.epochMillis) AS created"
        ),
        "signup_prefixes": (
            f"MATCH (n:{a.label})-[u:{s.USED_IP.type}]->(ip:{s.IP.label})\n"
            "WHERE u.signup AND n.created_at IS NOT NULL\n"
            f"WITH n, ip ORDER BY coalesce(u.first_seen.epochMillis, 0), ip.{s.IP.key}\n"
            "WITH n, head(collect([ip.prefix]))[0] AS prefix\n"
            "WHERE prefix IS NOT NULL\n"
            "RETURN prefix, collect(n.created_at.epochMillis) AS created"
        ),
    }
    for rel in (s.TRANSFERRED_TO, s.WITHDREW_TO):
        out[f"typical_{rel.type}"] = (
            f"MATCH ()-[r:{rel.type}]->() RETURN r.asset AS asset, percentileCont({_per_event('r')}, 0.5) AS median"
        )
    latest = []
    for node_export in NODE_EXPORTS:
        for c in node_export.columns:
            if c.kind == "datetime" and not c.name.startswith(label_prefixes):
                latest.append(f"MATCH (n:{node_export.node.label}) RETURN max(n.{c.name}.epochMillis) AS t")
    for rel_export in REL_EXPORTS:
        for c in rel_export.columns:
            if c.kind == "datetime" and not c.name.startswith(label_prefixes):
                latest.append(f"MATCH ()-[r:{rel_export.rel.type}]->() RETURN max(r.{c.name}.epochMillis) AS t")
    out["latest"] = "CALL () {\n" + "\nUNION ALL\n".join(latest) + "\n}\nRETURN max(t) AS latest"
    return out
