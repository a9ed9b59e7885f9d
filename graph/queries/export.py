"""Cypher for reading the graph back out, page by page (keyset pagination on business keys).

Every domain node label and relationship type is read with the same columns ingestion writes
(:mod:`graph.queries.ingest`): a node's key and properties; a relationship's ``src`` and ``dst`` keys, its
discriminator (``asset``) when it has one, and its properties. Datetimes come back as epoch milliseconds,
converted by the server (``.epochMillis``), so the driver decodes plain integers.

A page is one record of *columns*: ``RETURN [n IN page | n.key] AS key, …``. List comprehensions keep
nulls (``collect`` would drop them), and one record per page spares the driver a record per row. The
cursor of the next page is the page's largest key as the server orders strings (``max``), so pagination
never depends on Python and Neo4j agreeing on string order. Relationships are paged by their source
account (every domain relationship starts at an ``Account``): a page holds the relationships of up to
``$batch`` consecutive accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from graph import schema as s
from graph.queries.ingest import ACCOUNT_LABELS, ACCOUNT_ROWS, IDENTIFIER_ROWS, REL_ROWS, STUB_ACCOUNT_ROWS, Prop

#: The verdict columns training reads (see :func:`gnn.build.label_codes`); written by ``ringwatch verdict``.
VERDICT_LABEL: Final = (Prop("verdict"), Prop("verdict_threat"))

#: Page cursor before the first key: every string compares greater than the empty string.
FIRST_CURSOR: Final = ""


@dataclass(frozen=True)
class ExportColumn:
    """One exported column: its name and the kind of value ingestion writes into it."""

    name: str
    kind: str  # "string", "long", "double", "boolean" or "datetime" (exported as epoch ms, a long)


@dataclass(frozen=True)
class NodeExport:
    """How one node label is read: its columns (key first) and the page query."""

    node: s.NodeSpec
    columns: tuple[ExportColumn, ...]
    cypher: str


@dataclass(frozen=True)
class RelExport:
    """How one relationship type is read: its columns (``src``, ``dst``, discriminator, props) and query."""

    rel: s.RelSpec
    columns: tuple[ExportColumn, ...]
    cypher: str

    @property
    def keys(self) -> tuple[str, ...]:
        return ("src", "dst", self.rel.discriminator) if self.rel.discriminator else ("src", "dst")


def _project(var: str, column: ExportColumn) -> str:
    value = f"{var}.{column.name}"
    return f"{value}.epochMillis" if column.kind == "datetime" else value


def _columns(props: tuple[Prop, ...]) -> tuple[ExportColumn, ...]:
    seen: dict[str, ExportColumn] = {}
    for p in props:
        seen.setdefault(p.name, ExportColumn(p.name, p.kind))
    return tuple(seen.values())


def node_export(node: s.NodeSpec, props: tuple[Prop, ...]) -> NodeExport:
    """The page query of a node label: nodes with key ``> $after``, ``$batch`` of them, in key order."""
    columns = (ExportColumn(node.key, "string"), *_columns(props))
    returns = ",\n       ".join(f"[n IN page | {_project('n', c)}] AS {c.name}" for c in columns)
    cypher = (
        f"MATCH (n:{node.label}) WHERE n.{node.key} > $after\n"
        f"WITH n ORDER BY n.{node.key} LIMIT $batch\n"
        f"WITH collect(n) AS page, max(n.{node.key}) AS last\n"
        f"RETURN last,\n       {returns}"
    )
    return NodeExport(node, columns, cypher)


def rel_export(rel: s.RelSpec, props: tuple[Prop, ...]) -> RelExport:
    """The page query of a relationship type: the relationships of ``$batch`` source accounts after ``$after``.

    ``OPTIONAL MATCH`` keeps accounts without such a relationship in the page, so the cursor still moves
    past them; their null rows are dropped before ``collect``.
    """
    src, dst = rel.source, rel.target
    keys = [ExportColumn("src", "string"), ExportColumn("dst", "string")]
    if rel.discriminator:
        keys.append(ExportColumn(rel.discriminator, "string"))
    columns = (*keys, *(c for c in _columns(props) if c.name != rel.discriminator))
    sources = {"src": f"a.{src.key}", "dst": f"b.{dst.key}"}
    row = ", ".join(sources.get(c.name) or _project("r", c) for c in columns)
    returns = ",\n       ".join(f"[x IN rows | x[{i}]] AS {c.name}" for i, c in enumerate(columns))
    cypher = (
        f"MATCH (a:{src.label}) WHERE a.{src.key} > $after\n"
        f"WITH a ORDER BY a.{src.key} LIMIT $batch\n"
        f"WITH collect(a) AS accounts, max(a.{src.key}) AS last\n"
        "UNWIND accounts AS a\n"
        f"OPTIONAL MATCH (a)-[r:{rel.type}]->(b:{dst.label})\n"
        f"WITH last, collect(CASE WHEN r IS NULL THEN null ELSE [{row}] END) AS rows\n"
        f"RETURN last,\n       {returns}"
    )
    return RelExport(rel, columns, cypher)


def _account_export() -> NodeExport:
    # The three account writes (full rows, stubs, labels) and an investigator's verdict make up the Account node.
    props = (*ACCOUNT_ROWS.props, *STUB_ACCOUNT_ROWS.props, *ACCOUNT_LABELS.props, *VERDICT_LABEL)
    export = node_export(s.ACCOUNT, props)
    names = tuple(c.name for c in export.columns)
    if names != s.ACCOUNT_PROPERTIES:
        raise ValueError(f"Account export columns {names} differ from schema.ACCOUNT_PROPERTIES")
    return export


def _check_sources() -> None:
    # Export relies on paging relationships by their source account; a new type elsewhere needs a new query.
    for rel in s.DOMAIN_RELS:
        if rel.source != s.ACCOUNT:
            raise ValueError(f"{rel.type} does not start at Account; export pages relationships by account")


_check_sources()

#: Every domain node label, in schema order, with how it is read.
NODE_EXPORTS: Final = (
    _account_export(),
    *(node_export(w.node, w.props) for w in IDENTIFIER_ROWS if w.node is not None),
)
#: Every domain relationship type, in schema order, with how it is read.
REL_EXPORTS: Final = tuple(rel_export(w.rel, w.props) for w in REL_ROWS if w.rel is not None)
NODE_EXPORTS_BY_LABEL: Final = {e.node.label: e for e in NODE_EXPORTS}
REL_EXPORTS_BY_TYPE: Final = {e.rel.type: e for e in REL_EXPORTS}


def _check_complete() -> None:
    labels = [e.node.label for e in NODE_EXPORTS]
    types = [e.rel.type for e in REL_EXPORTS]
    if sorted(labels) != sorted(n.label for n in s.DOMAIN_NODES) or sorted(types) != sorted(
        r.type for r in s.DOMAIN_RELS
    ):
        raise ValueError(f"export covers {labels} / {types}; the schema's domain elements differ")


_check_complete()
