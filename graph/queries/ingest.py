"""Cypher for ingestion: constraints, and one batched ``UNWIND $rows`` write per kind of graph element.

Each :class:`WriteKind` names the rows it takes (key columns plus properties) and how a property merges
into what is already in the graph, so that ingesting events in several runs gives the same totals as one
run: counts and totals add, ``first_seen`` takes the earliest, ``last_seen`` the latest, flags OR together.
Times travel as epoch milliseconds (UTC) and are stored as Neo4j ``DATETIME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from graph import schema as s

Rule = Literal["set", "sum", "min", "max", "or", "create"]


@dataclass(frozen=True)
class Prop:
    """A property written by ingestion and the rule that merges it with a stored value."""

    name: str
    rule: Rule = "set"
    kind: Literal["string", "long", "double", "boolean", "datetime"] = "string"


@dataclass(frozen=True)
class WriteKind:
    """One kind of write: node upsert, relationship upsert, or account annotation."""

    name: str
    cypher: str
    keys: tuple[str, ...]
    props: tuple[Prop, ...]
    node: s.NodeSpec | None = None
    rel: s.RelSpec | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *(p.name for p in self.props))


def _value(p: Prop) -> str:
    return f"datetime({{epochMillis: row.{p.name}}})" if p.kind == "datetime" else f"row.{p.name}"


def _assignment(var: str, p: Prop) -> str:
    target, new = f"{var}.{p.name}", _value(p)
    if p.rule == "set":
        return f"{target} = {new}"
    if p.rule == "sum":
        return f"{target} = coalesce({target}, 0) + {new}"
    if p.rule == "or":
        return f"{target} = coalesce({target}, false) OR {new}"
    if p.rule in ("min", "max"):
        op = "<" if p.rule == "min" else ">"
        return f"{target} = CASE WHEN {target} IS NULL OR {new} {op} {target} THEN {new} ELSE {target} END"
    raise ValueError(f"rule {p.rule!r} has no SET form")


def _set_clause(var: str, props: tuple[Prop, ...]) -> str:
    on_create = [f"{var}.{p.name} = {_value(p)}" for p in props if p.rule == "create"]
    always = [_assignment(var, p) for p in props if p.rule != "create"]
    parts = []
    if on_create:
        parts.append("ON CREATE SET " + ", ".join(on_create))
    if always:
        parts.append("SET " + ", ".join(always))
    return "\n".join(parts)


def node_write(name: str, node: s.NodeSpec, props: tuple[Prop, ...]) -> WriteKind:
    cypher = (
        "UNWIND $rows AS row\n"
        f"MERGE (n:{node.label} {{{node.key}: row.{node.key}}})\n"
        f"{_set_clause('n', props)}\n"
        "RETURN count(*) AS written"
    )
    return WriteKind(name, cypher, (node.key,), props, node=node)


def rel_write(rel: s.RelSpec, props: tuple[Prop, ...]) -> WriteKind:
    disc = f" {{{rel.discriminator}: row.{rel.discriminator}}}" if rel.discriminator else ""
    keys = ("src", "dst", rel.discriminator) if rel.discriminator else ("src", "dst")
    cypher = (
        "UNWIND $rows AS row\n"
        f"MATCH (a:{rel.source.label} {{{rel.source.key}: row.src}})\n"
        f"MATCH (b:{rel.target.label} {{{rel.target.key}: row.dst}})\n"
        f"MERGE (a)-[r:{rel.type}{disc}]->(b)\n"
        f"{_set_clause('r', props)}\n"
        "RETURN count(*) AS written"
    )
    return WriteKind(rel.type, cypher, keys, props, rel=rel)


_SEEN = (Prop("count", "sum", "long"), Prop("first_seen", "min", "datetime"), Prop("last_seen", "max", "datetime"))
_FLOW = (Prop("count", "sum", "long"), Prop("total", "sum", "double"),
         Prop("first_seen", "min", "datetime"), Prop("last_seen", "max", "datetime"))

ACCOUNT_ROWS: Final = node_write(
    "Account",
    s.ACCOUNT,
    (
        Prop("created_at", "set", "datetime"),
        Prop("country"),
        Prop("kyc_level", "set", "long"),
        Prop("email_domain"),
        Prop("stub", "set", "boolean"),
    ),
)
# Accounts referenced by events but absent from the accounts table: created flagged, never overwritten.
STUB_ACCOUNT_ROWS: Final = node_write("Account.stub", s.ACCOUNT, (Prop("stub", "create", "boolean"),))

ACCOUNT_LABELS: Final = WriteKind(
    "Account.label",
    "UNWIND $rows AS row\n"
    f"MATCH (n:{s.ACCOUNT.label} {{{s.ACCOUNT.key}: row.{s.ACCOUNT.key}}})\n"
    "WITH n, row, datetime({epochMillis: row.known_label_at}) AS at\n"
    "WITH n, row, at, (n.known_label_at IS NULL OR at > n.known_label_at"
    " OR (at = n.known_label_at AND row.known_label + row.known_label_source"
    " > n.known_label + n.known_label_source)) AS newer\n"
    "SET n.known_label = CASE WHEN newer THEN row.known_label ELSE n.known_label END,\n"
    "    n.known_label_source = CASE WHEN newer THEN row.known_label_source ELSE n.known_label_source END,\n"
    "    n.known_label_at = CASE WHEN newer THEN at ELSE n.known_label_at END\n"
    "RETURN count(*) AS written",
    (s.ACCOUNT.key,),
    (Prop("known_label"), Prop("known_label_source"), Prop("known_label_at", "max", "datetime")),
    node=s.ACCOUNT,
)

IDENTIFIER_ROWS: Final = (
    node_write("Device", s.DEVICE, (Prop("user_agent"),)),
    node_write("IP", s.IP, (Prop("version", "set", "long"), Prop("prefix"))),
    node_write("Card", s.CARD, (Prop("bin"), Prop("last4"))),
    node_write("Email", s.EMAIL, (Prop("domain"),)),
    node_write("Phone", s.PHONE, ()),
    node_write("Wallet", s.WALLET, ()),
    node_write("Promo", s.PROMO, ()),
)

REL_ROWS: Final = (
    rel_write(s.USED_DEVICE, (*_SEEN, Prop("signup", "or", "boolean"))),
    rel_write(s.USED_IP, (*_SEEN, Prop("signup", "or", "boolean"))),
    rel_write(
        s.USED_CARD,
        (*_SEEN, Prop("deposit_count", "sum", "long"), Prop("deposit_total", "sum", "double"),
         Prop("chargeback_count", "sum", "long"), Prop("chargeback_total", "sum", "double")),
    ),
    rel_write(s.HAS_EMAIL, (Prop("since", "min", "datetime"),)),
    rel_write(s.HAS_PHONE, (Prop("since", "min", "datetime"),)),
    rel_write(s.REFERRED, (Prop("at", "min", "datetime"),)),
    rel_write(s.TRANSFERRED_TO, _FLOW),
    rel_write(s.WITHDREW_TO, _FLOW),
    rel_write(s.REDEEMED, _FLOW),
)

#: Every write, in the order a run applies them: nodes before the relationships that join them.
WRITE_ORDER: Final = (ACCOUNT_ROWS, STUB_ACCOUNT_ROWS, *IDENTIFIER_ROWS, *REL_ROWS, ACCOUNT_LABELS)
WRITES_BY_NAME: Final = {w.name: w for w in WRITE_ORDER}


def constraint_statements() -> list[str]:
    """``CREATE CONSTRAINT … IF NOT EXISTS`` for every business key (uniqueness; Community edition)."""
    return [
        f"CREATE CONSTRAINT {spec.label.lower()}_{spec.key} IF NOT EXISTS "
        f"FOR (n:{spec.label}) REQUIRE n.{spec.key} IS UNIQUE"
        for spec in s.ALL_NODES
    ]


RECORD_BATCH: Final = (
    f"CREATE (b:{s.INGEST_BATCH.label} {{{s.INGEST_BATCH.key}: $batch_id}})\n"
    "SET b.kind = $kind, b.rows = $rows, b.run_id = $run_id, b.committed_at = datetime()"
)

COMMITTED_BATCHES: Final = (
    "UNWIND $batch_ids AS id\n"
    f"MATCH (b:{s.INGEST_BATCH.label} {{{s.INGEST_BATCH.key}: id}})\n"
    "RETURN b.batch_id AS batch_id"
)

COUNT_NODES: Final = "MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n"
COUNT_RELS: Final = "MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n"
