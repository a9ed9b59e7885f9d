"""Read-only summaries of what is in the graph — every way ringwatch counts it — for run summaries and status."""

from __future__ import annotations

from typing import Final

import neo4j

from graph import schema as s


def count_label(node: s.NodeSpec) -> str:
    """Number of nodes of a label (answered from the count store)."""
    return f"MATCH (n:{node.label}) RETURN count(n) AS n"


def count_type(rel: s.RelSpec) -> str:
    """Number of relationships of a type (answered from the count store)."""
    return f"MATCH ()-[r:{rel.type}]->() RETURN count(r) AS n"


#: The ledger nodes every write of exported data leaves behind — an ingest chunk (batch or API event), a
#: verdict, an erasure's tombstone: with the domain counts, the graph's fingerprint (``gnn.export``).
CHANGE_LEDGERS: Final = (s.INGEST_BATCH, s.VERDICT, s.ERASURE)

#: Every node in the database.
COUNT_ALL_NODES: Final = "MATCH (n) RETURN count(n) AS n"
#: Nodes per (first) label and relationships per type, whatever they are (benchmarks count ledgers too).
COUNT_PER_LABEL: Final = "MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n"
COUNT_PER_TYPE: Final = "MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n"


def graph_counts(driver: neo4j.Driver, database: str, also: tuple[s.NodeSpec, ...] = ()) -> dict[str, int]:
    """Count of nodes per domain label (and per label of ``also``) and relationships per domain type (from the
    count store: cheap). A session, not ``execute_query``: after a bulk import replaced the store, the driver's
    bookmarks are stale."""
    counts: dict[str, int] = {}
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
        for node in (*s.DOMAIN_NODES, *also):
            counts[node.label] = int(session.run(count_label(node)).single(strict=True)["n"])
        for rel in s.DOMAIN_RELS:
            counts[rel.type] = int(session.run(count_type(rel)).single(strict=True)["n"])
    return counts


def counts_per_label_and_type(driver: neo4j.Driver, database: str) -> dict[str, dict[str, int]]:
    """``{"nodes": {label: n}, "relationships": {type: n}}`` over everything in the database (bookmark-free)."""
    nodes, _, _ = driver.execute_query(COUNT_PER_LABEL, database_=database, bookmark_manager_=None)
    rels, _, _ = driver.execute_query(COUNT_PER_TYPE, database_=database, bookmark_manager_=None)
    return {"nodes": {r["label"]: r["n"] for r in nodes}, "relationships": {r["type"]: r["n"] for r in rels}}


#: A first query for Neo4j Browser: devices used by five or more accounts, with those accounts.
EXAMPLE_SHARED_DEVICES = (
    f"MATCH (d:{s.DEVICE.label})<-[:{s.USED_DEVICE.type}]-(a:{s.ACCOUNT.label})\n"
    "WITH d, collect(a) AS accounts WHERE size(accounts) >= 5\n"
    "RETURN d, accounts LIMIT 25"
)


def count_nodes(driver: neo4j.Driver, database: str) -> int:
    """Every node in the database (bookmark-free: safe right after the store was replaced)."""
    records, _, _ = driver.execute_query(COUNT_ALL_NODES, database_=database, bookmark_manager_=None)
    return int(records[0]["n"])


def server_components(driver: neo4j.Driver) -> list[dict[str, str]]:
    """Name, version and edition of the server's components (``CALL dbms.components()``)."""
    records, _, _ = driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition"
    )
    return [dict(r) for r in records]


#: Deletes every node and relationship, in batches (an auto-commit query: ``session.run``). Schema stays.
WIPE_ALL = "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 1000 ROWS"


def wipe_database(driver: neo4j.Driver, database: str) -> None:
    """Delete every node and relationship of ``database`` (constraints and indexes stay)."""
    with driver.session(database=database) as session:
        session.run(WIPE_ALL).consume()
