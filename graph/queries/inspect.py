"""Read-only summaries of what is in the graph (for run summaries and status)."""

from __future__ import annotations

import neo4j

from graph import schema as s


def graph_counts(driver: neo4j.Driver, database: str) -> dict[str, int]:
    """Count of nodes per domain label and relationships per domain type (from the count store: cheap)."""
    counts: dict[str, int] = {}
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
        for node in s.DOMAIN_NODES:
            counts[node.label] = session.run(f"MATCH (n:{node.label}) RETURN count(n) AS n").single()["n"]
        for rel in s.DOMAIN_RELS:
            counts[rel.type] = session.run(f"MATCH ()-[r:{rel.type}]->() RETURN count(r) AS n").single()["n"]
    return counts
