"""Cypher for ingestion: constraints, and one batched ``UNWIND`` write per kind of graph element.

Each :class:`WriteKind` names the rows it takes (key columns plus properties) and how a property merges
into what is already in the graph, so that ingesting events in several runs gives the same totals as one
run: counts and totals add, ``first_seen`` takes the earliest, ``last_seen`` the latest, flags OR together, and
an optional value (a device's user agent) is only replaced by a present one.
Times travel as epoch milliseconds (UTC) and are stored as Neo4j ``DATETIME``. A batch travels as one
``$rows`` parameter holding its columns (see :data:`ROWS_PARAM`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from graph import schema as s

Rule = Literal["set", "sum", "min", "max", "or", "create", "fill"]


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


#: The one parameter of every write: the batch as columns, ``{column: [value, …]}``, all of one length.
#: Columns rather than a list of row maps: the driver packs parameters in pure Python, value by value, and row
#: maps repeat every column name on every row; packing them cost about as much CPU as Neo4j's work on the rows.
ROWS_PARAM: Final = "rows"


def _var(name: str) -> str:
    """The Cypher variable holding one row's value of column ``name``."""
    return f"in_{name}"


def _unwind(columns: tuple[str, ...], props: tuple[Prop, ...]) -> str:
    """``UNWIND`` the column parameter into one row of variables, each datetime built once per row."""
    kinds = {p.name: p.kind for p in props}
    values = []
    for c in columns:
        value = f"${ROWS_PARAM}.{c}[i]"
        if kinds.get(c) == "datetime":
            value = f"datetime({{epochMillis: {value}}})"
        values.append(f"{value} AS {_var(c)}")
    return f"UNWIND range(0, size(${ROWS_PARAM}.{columns[0]}) - 1) AS i\nWITH " + ", ".join(values)


def _assignment(var: str, p: Prop) -> str:
    target, new = f"{var}.{p.name}", _var(p.name)
    if p.rule == "set":
        return f"{target} = {new}"
    if p.rule == "sum":
        return f"{target} = coalesce({target}, 0) + {new}"
    if p.rule == "or":
        return f"{target} = coalesce({target}, false) OR {new}"
    if p.rule == "fill":  # a missing value (an accounts-only folder has no user agent) keeps the stored one
        return f"{target} = coalesce({new}, {target})"
    if p.rule in ("min", "max"):
        op = "<" if p.rule == "min" else ">"
        return f"{target} = CASE WHEN {target} IS NULL OR {new} {op} {target} THEN {new} ELSE {target} END"
    raise ValueError(f"rule {p.rule!r} has no SET form")


def _set_clause(var: str, props: tuple[Prop, ...]) -> str:
    """``SET`` for the ``set`` rule; for the others ``ON CREATE SET`` the row's value (what each rule gives
    against nothing stored) and ``ON MATCH SET`` the rule, so a first load evaluates no merge expression."""
    merged = [p for p in props if p.rule != "set"]
    on_create = [f"{var}.{p.name} = {_var(p.name)}" for p in merged]
    on_match = [_assignment(var, p) for p in merged if p.rule != "create"]
    always = [_assignment(var, p) for p in props if p.rule == "set"]
    parts = []
    if on_create:
        parts.append("ON CREATE SET " + ", ".join(on_create))
    if on_match:
        parts.append("ON MATCH SET " + ", ".join(on_match))
    if always:
        parts.append("SET " + ", ".join(always))
    return "\n".join(parts)


def node_write(name: str, node: s.NodeSpec, props: tuple[Prop, ...]) -> WriteKind:
    columns = (node.key, *(p.name for p in props))
    cypher = (
        f"{_unwind(columns, props)}\n"
        f"MERGE (n:{node.label} {{{node.key}: {_var(node.key)}}})\n"
        f"{_set_clause('n', props)}\n"
        "RETURN count(*) AS written"
    )
    return WriteKind(name, cypher, (node.key,), props, node=node)


def rel_write(rel: s.RelSpec, props: tuple[Prop, ...]) -> WriteKind:
    disc = f" {{{rel.discriminator}: {_var(rel.discriminator)}}}" if rel.discriminator else ""
    keys = ("src", "dst", rel.discriminator) if rel.discriminator else ("src", "dst")
    cypher = (
        f"{_unwind((*keys, *(p.name for p in props)), props)}\n"
        f"MATCH (a:{rel.source.label} {{{rel.source.key}: {_var('src')}}})\n"
        f"MATCH (b:{rel.target.label} {{{rel.target.key}: {_var('dst')}}})\n"
        f"MERGE (a)-[r:{rel.type}{disc}]->(b)\n"
        f"{_set_clause('r', props)}\n"
        "RETURN count(*) AS written"
    )
    return WriteKind(rel.type, cypher, keys, props, rel=rel)


_SEEN = (Prop("count", "sum", "long"), Prop("first_seen", "min", "datetime"), Prop("last_seen", "max", "datetime"))
_FLOW = (
    Prop("count", "sum", "long"),
    Prop("total", "sum", "double"),
    Prop("first_seen", "min", "datetime"),
    Prop("last_seen", "max", "datetime"),
)

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

_LABEL_PROPS: Final = (Prop("known_label"), Prop("known_label_source"), Prop("known_label_at", "max", "datetime"))
#: The account's write lock is taken (by setting a scratch property) *before* the stored label is read, so the
#: comparison sees the latest committed label even when another run writes the same account at the same time;
#: reading first and writing after would let an older label overwrite a newer one committed in between.
ACCOUNT_LABELS: Final = WriteKind(
    "Account.label",
    f"{_unwind((s.ACCOUNT.key, *(p.name for p in _LABEL_PROPS)), _LABEL_PROPS)}\n"
    f"MATCH (n:{s.ACCOUNT.label} {{{s.ACCOUNT.key}: {_var(s.ACCOUNT.key)}}})\n"
    "SET n.known_label_lock = true\n"
    "WITH n, in_known_label, in_known_label_source, in_known_label_at,\n"
    "     (n.known_label_at IS NULL OR in_known_label_at > n.known_label_at OR (in_known_label_at = n.known_label_at"
    " AND in_known_label + in_known_label_source > n.known_label + n.known_label_source)) AS newer\n"
    "SET n.known_label = CASE WHEN newer THEN in_known_label ELSE n.known_label END,\n"
    "    n.known_label_source = CASE WHEN newer THEN in_known_label_source ELSE n.known_label_source END,\n"
    "    n.known_label_at = CASE WHEN newer THEN in_known_label_at ELSE n.known_label_at END\n"
    "REMOVE n.known_label_lock\n"
    "RETURN count(*) AS written",
    (s.ACCOUNT.key,),
    _LABEL_PROPS,
    node=s.ACCOUNT,
)

IDENTIFIER_ROWS: Final = (
    node_write("Device", s.DEVICE, (Prop("user_agent", "fill"),)),
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
        (
            *_SEEN,
            Prop("deposit_count", "sum", "long"),
            Prop("deposit_total", "sum", "double"),
            Prop("chargeback_count", "sum", "long"),
            Prop("chargeback_total", "sum", "double"),
        ),
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


#: Range indexes the jobs look up by (created idempotently with the constraints): ring grouping joins IPs by
#: their network block, and scoring, rings and the query pack select accounts by risk label.
INDEXES: Final = ((s.IP, "prefix"), (s.ACCOUNT, "risk_label"), (s.ACCOUNT, "risk_run_id"), (s.RING, "status"))


def index_statements() -> list[str]:
    """``CREATE INDEX … IF NOT EXISTS`` for :data:`INDEXES`."""
    return [
        f"CREATE INDEX {spec.label.lower()}_{prop} IF NOT EXISTS FOR (n:{spec.label}) ON (n.{prop})"
        for spec, prop in INDEXES
    ]


AWAIT_INDEXES: Final = "CALL db.awaitIndexes(300)"


def record_batch(ledger: s.NodeSpec = s.INGEST_BATCH) -> str:
    """Create a batch's ledger node (fails on the uniqueness constraint when it already exists)."""
    return (
        f"CREATE (b:{ledger.label} {{{ledger.key}: $batch_id}})\n"
        "SET b.kind = $kind, b.rows = $rows, b.run_id = $run_id, b.committed_at = datetime()"
    )


def record_chunks(ledger: s.NodeSpec = s.INGEST_BATCH) -> str:
    """Create one ledger node per chunk of ``$chunks`` (``{id, index, rows}`` maps) of content part ``$part_id``;
    fails on the uniqueness constraint when any of them already exists."""
    return (
        "UNWIND $chunks AS chunk\n"
        f"CREATE (b:{ledger.label} {{{ledger.key}: chunk.id}})\n"
        "SET b.kind = $kind, b.part_id = $part_id, b.chunk = chunk.index, b.rows = chunk.rows, b.run_id = $run_id,\n"
        "    b.committed_at = datetime()"
    )


def committed_batches(ledger: s.NodeSpec = s.INGEST_BATCH) -> str:
    """Which of ``$batch_ids`` have a ledger node."""
    return f"UNWIND $batch_ids AS id\nMATCH (b:{ledger.label} {{{ledger.key}: id}})\nRETURN b.{ledger.key} AS batch_id"
