"""A canonical, comparable picture of everything in the database (for equality tests)."""

from __future__ import annotations

from typing import Any

import neo4j

from graph import schema as s

_KEYS = {spec.label: spec.key for spec in s.ALL_NODES}
_VOLATILE = {"IngestBatch": {"committed_at", "run_id"}}


def _plain(value: Any) -> Any:
    if hasattr(value, "to_native"):
        value = value.to_native()
    if isinstance(value, float):
        return round(value, 9)
    return value


def dump(driver: neo4j.Driver) -> dict[str, Any]:
    """Nodes as {(label, key): props}, relationships as {(type, src, dst, discriminator): props}."""
    nodes: dict[tuple[str, str], dict[str, Any]] = {}
    recs, _, _ = driver.execute_query("MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
    for r in recs:
        (label,) = r["labels"]
        props = {k: _plain(v) for k, v in r["props"].items() if k not in _VOLATILE.get(label, ())}
        nodes[(label, props[_KEYS[label]])] = props
    rels: dict[tuple[str, str, str, Any], dict[str, Any]] = {}
    recs, _, _ = driver.execute_query(
        "MATCH (a)-[r]->(b) RETURN type(r) AS type, labels(a)[0] AS la, labels(b)[0] AS lb, "
        "a AS a, b AS b, properties(r) AS props"
    )
    for r in recs:
        key = (r["type"], r["a"][_KEYS[r["la"]]], r["b"][_KEYS[r["lb"]]], r["props"].get("asset"))
        if key in rels:
            raise AssertionError(f"duplicate relationship {key}")
        rels[key] = {k: _plain(v) for k, v in r["props"].items()}
    return {"nodes": nodes, "rels": rels}


def counts(driver: neo4j.Driver) -> dict[str, int]:
    recs, _, _ = driver.execute_query(
        "CALL () { MATCH (n) RETURN labels(n)[0] AS k, count(*) AS n "
        "UNION ALL MATCH ()-[r]->() RETURN type(r) AS k, count(*) AS n } RETURN k, n"
    )
    return {r["k"]: r["n"] for r in recs}
