"""Read the whole domain graph out of Neo4j into pandas frames, page by page, with bounded memory.

The frames have exactly the columns ingestion writes (see :mod:`graph.queries.export`): one frame per node
label (key, then properties) and one per relationship type (``src``, ``dst``, ``asset`` where the type has
it, then properties); datetimes are epoch milliseconds. Columns use pandas' nullable dtypes
(:data:`COLUMN_DTYPES`), rows are sorted by key, so an export and
:func:`gnn.build.tables_from_graph_rows` of the same data compare equal.

Reads run in READ transactions (one per page, retried by the driver on transient errors). A page's
columns go straight into Arrow arrays; the Python lists of a page are dropped as soon as it is converted,
so memory holds the compact columns and one page, never a dict per row.

Example::

    with build_driver(settings) as driver:
        tables = export_graph(driver, settings.neo4j_database, progress=print_progress)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import neo4j
import pandas as pd
import pyarrow as pa
from neo4j.exceptions import DriverError, Neo4jError

from graph import schema
from graph.errors import RingwatchError
from graph.queries import export as q
from graph.queries.inspect import CHANGE_LEDGERS, count_label, count_type, graph_counts
from graph.queries.report import RING_MEMBERS
from graph.receptive_field import read_receptive_field
from graph.runs import Progress
from graph.supernodes import MODEL_SUPERNODE_CAP

DEFAULT_PAGE_SIZE = 10_000

#: Arrow type and pandas dtype of each kind of property (datetimes travel as epoch milliseconds).
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.large_string(),
    "long": pa.int64(),
    "datetime": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}
COLUMN_DTYPES: dict[str, Any] = {
    "string": pd.StringDtype("pyarrow"),
    "long": pd.Int64Dtype(),
    "datetime": pd.Int64Dtype(),
    "double": pd.Float64Dtype(),
    "boolean": pd.BooleanDtype(),
}
_PANDAS_FOR_ARROW = {
    pa.large_string(): COLUMN_DTYPES["string"],
    pa.string(): COLUMN_DTYPES["string"],
    pa.int64(): COLUMN_DTYPES["long"],
    pa.float64(): COLUMN_DTYPES["double"],
    pa.bool_(): COLUMN_DTYPES["boolean"],
}


class GraphExportError(RingwatchError):
    """The graph could not be read (server gone, query failed, or a property of an unexpected type)."""


class GraphTables(NamedTuple):
    """The domain graph as frames: node label → frame, relationship type → frame."""

    nodes: dict[str, pd.DataFrame]
    rels: dict[str, pd.DataFrame]


def arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a frame with the nullable dtypes of :data:`COLUMN_DTYPES`."""
    return table.to_pandas(types_mapper=_PANDAS_FOR_ARROW.get)


def canonical_frame(frame: pd.DataFrame, columns: tuple[q.ExportColumn, ...], keys: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` reduced to ``columns`` (missing ones all null), canonical dtypes, sorted by ``keys``.

    Raises:
        ValueError: a key column is missing or null.
    """
    out = {}
    for column in columns:
        dtype = COLUMN_DTYPES[column.kind]
        if column.name in frame.columns:
            out[column.name] = frame[column.name].astype(dtype).reset_index(drop=True)
        elif column.name in keys:
            raise ValueError(f"frame lacks key column {column.name!r}; has {list(frame.columns)}")
        else:
            out[column.name] = pd.Series(pd.array([pd.NA] * len(frame), dtype=dtype))
    result = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
    if len(result) and result[list(keys)].isna().any().any():
        raise ValueError(f"null in key columns {list(keys)}")
    return result.sort_values(list(keys), kind="stable", ignore_index=True)


class _ColumnBuilder:
    """Collects the pages of some columns as Arrow chunks; builds the frame once at the end."""

    def __init__(self, columns: tuple[q.ExportColumn, ...], what: str) -> None:
        self.columns = columns
        self.what = what
        self.chunks: dict[str, list[pa.Array]] = {c.name: [] for c in columns}
        self.rows = 0

    def add(self, page: neo4j.Record | Mapping[str, list[Any]]) -> int:
        n = len(page[self.columns[0].name])
        for column in self.columns:
            try:
                self.chunks[column.name].append(pa.array(page[column.name], type=ARROW_TYPES[column.kind]))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise GraphExportError(
                    f"{self.what}.{column.name} holds a value that is not a {column.kind}: {e}"
                ) from e
        self.rows += n
        return n

    def frame(self, keys: tuple[str, ...]) -> pd.DataFrame:
        arrays = {c.name: pa.chunked_array(self.chunks[c.name], type=ARROW_TYPES[c.kind]) for c in self.columns}
        self.chunks = {}
        table = pa.table(arrays)
        table = table.sort_by([(k, "ascending") for k in keys])  # code point order, as pandas sorts
        return arrow_to_frame(table)


def _read_pages(
    session: neo4j.Session,
    cypher: str,
    builder: _ColumnBuilder,
    page_size: int,
    stage: str,
    total: int,
    progress: Progress | None,
) -> None:
    metadata = {"app": "ringwatch", "job": "export", "stage": stage}

    def page(tx: neo4j.ManagedTransaction, after: str) -> neo4j.Record | None:
        return tx.run(cypher, after=after, batch=page_size).single(strict=False)

    work = neo4j.unit_of_work(metadata=metadata)(page)
    after = q.FIRST_CURSOR
    while True:
        record = session.execute_read(work, after)
        if record is None or record["last"] is None:
            break
        builder.add(record)
        after = record["last"]
        if progress:
            progress(stage, builder.rows, total)


def _count(session: neo4j.Session, cypher: str) -> int:
    record = session.run(cypher).single(strict=True)
    return int(record["n"])


def export_graph(
    driver: neo4j.Driver, database: str, *, page_size: int = DEFAULT_PAGE_SIZE, progress: Progress | None = None
) -> GraphTables:
    """Read every domain node label and relationship type into frames (see the module docstring).

    The graph should not be written to meanwhile: each page is its own transaction, so concurrent writes
    could leave a relationship whose endpoint was read before it existed.

    Args:
        driver: an open driver (the caller closes it).
        database: the database to read.
        page_size: nodes per page; for relationships, source accounts per page.
        progress: called as ``progress(stage, done, total)``, stage being the label or type being read.

    Returns:
        Frames per node label and relationship type; every label and type of the schema is present,
        empty when the graph has none.

    Raises:
        ValueError: ``page_size`` is not positive.
        GraphExportError: the server failed or a property had an unexpected type.
    """
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    nodes: dict[str, pd.DataFrame] = {}
    rels: dict[str, pd.DataFrame] = {}
    try:
        # Notifications off: a graph without (say) any label yet makes every page warn "property key does not exist".
        with driver.session(
            database=database,
            default_access_mode=neo4j.READ_ACCESS,
            notifications_min_severity=neo4j.NotificationMinimumSeverity.OFF,
        ) as session:
            for node_export in q.NODE_EXPORTS:
                label = node_export.node.label
                builder = _ColumnBuilder(node_export.columns, label)
                total = _count(session, count_label(node_export.node))
                _read_pages(session, node_export.cypher, builder, page_size, label, total, progress)
                nodes[label] = builder.frame((node_export.node.key,))
            for rel_export in q.REL_EXPORTS:
                rel_type = rel_export.rel.type
                builder = _ColumnBuilder(rel_export.columns, rel_type)
                total = _count(session, count_type(rel_export.rel))
                _read_pages(session, rel_export.cypher, builder, page_size, rel_type, total, progress)
                rels[rel_type] = builder.frame(rel_export.keys)
    except Neo4jError as e:
        raise GraphExportError(f"reading the graph from database {database!r} failed: {e.message}") from e
    except DriverError as e:
        raise GraphExportError(f"Neo4j stopped answering while the graph was read: {e}") from e
    if progress:
        progress("done", 1, 1)
    return GraphTables(nodes, rels)


def graph_fingerprint(driver: neo4j.Driver, database: str) -> dict[str, int]:
    """Counts that change whenever what :func:`export_graph` reads changes, from Neo4j's count store (no node or
    relationship is read: milliseconds at any size).

    Nodes per domain label and relationships per domain type (what an export reads; ``graph_counts``), and the
    ledger nodes every ringwatch write of exported data leaves (:data:`graph.queries.inspect.CHANGE_LEDGERS`: an
    ingest chunk, a verdict, an erasure). A snapshot records it, read before its export; equal counts later mean
    no ringwatch command has changed the graph since. Edits made outside ringwatch (by hand in Neo4j Browser)
    leave no ledger node and are seen only when they change a count.

    Raises:
        GraphExportError: the server failed.
    """
    try:
        return graph_counts(driver, database, also=CHANGE_LEDGERS)
    except Neo4jError as e:
        raise GraphExportError(f"counting the graph in database {database!r} failed: {e.message}") from e
    except DriverError as e:
        raise GraphExportError(f"Neo4j stopped answering while the graph was counted: {e}") from e


def ring_accounts(driver: neo4j.Driver, database: str, ring_id: str) -> list[str]:
    """The member accounts of ring ``ring_id`` (its ``MEMBER_OF`` relationships).

    Raises:
        GraphExportError: no such ring, or it has no member.
    """
    records, _, _ = driver.execute_query(
        RING_MEMBERS, ring_ids=[ring_id], database_=database, routing_=neo4j.RoutingControl.READ
    )
    members = sorted({str(r["account_id"]) for r in records})
    if not members:
        raise GraphExportError(f"ring {ring_id!r} has no member account in database {database!r}")
    return members


def export_neighbourhood(
    driver: neo4j.Driver,
    database: str,
    accounts: list[str],
    hops: int,
    supernode_cap: int = MODEL_SUPERNODE_CAP,
) -> GraphTables:
    """The neighbourhood of ``accounts`` as the frames :func:`export_graph` gives for the whole graph.

    The neighbourhood is what a ``hops``-layer model reads to score them (:func:`graph.receptive_field.
    read_receptive_field`): every node within ``hops`` hops along any domain relationship (identifiers used by
    more than ``supernode_cap`` accounts are not crossed), and the relationships their features count (user
    counts of the identifiers one hop further, counterparties' transfers, referral chains), in one read
    transaction. An investigation's accounts or a ring thus become a snapshot, and a research data set.

    Raises:
        ValueError: no account given, or ``hops`` negative.
        GraphExportError: none of ``accounts`` is in the graph, or the server failed.
    """
    if not accounts:
        raise ValueError("accounts must name at least one account")
    if hops < 0:
        raise ValueError(f"hops must be >= 0, got {hops}")
    try:
        with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
            found = session.execute_read(
                neo4j.unit_of_work(metadata={"app": "ringwatch", "job": "export", "stage": "neighbourhood"})(
                    lambda tx: read_receptive_field(tx, sorted(set(accounts)), hops, supernode_cap)
                )
            )
    except Neo4jError as e:
        raise GraphExportError(f"reading the neighbourhood from database {database!r} failed: {e.message}") from e
    except DriverError as e:
        raise GraphExportError(f"Neo4j stopped answering while the neighbourhood was read: {e}") from e
    nodes = {e.node.label: canonical_frame(found.nodes[e.node.label], e.columns, (e.node.key,)) for e in q.NODE_EXPORTS}
    rels = {e.rel.type: canonical_frame(found.rels[e.rel.type], e.columns, e.keys) for e in q.REL_EXPORTS}
    present = set(nodes[schema.ACCOUNT.label][schema.ACCOUNT.key].astype(str))
    if not present & set(accounts):
        raise GraphExportError(f"none of the {len(set(accounts))} accounts asked for is in database {database!r}")
    return GraphTables(nodes, rels)
