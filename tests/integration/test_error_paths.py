"""Error paths that used to lie: each fails clearly, or does what it says, against the real Neo4j."""

from __future__ import annotations

import pytest

from graph import schema as s
from graph.errors import GraphWriteError
from graph.queries.ingest import WriteKind
from graph.writer import BatchWriter

# A write that breaks the Account key's uniqueness constraint (the product's writes MERGE; this one CREATEs).
CREATE_ACCOUNTS = WriteKind(
    name="create_accounts_for_the_test",
    cypher=(
        f"UNWIND $rows.account_id AS id CREATE (:{s.ACCOUNT.label} {{{s.ACCOUNT.key}: id}}) RETURN count(*) AS written"
    ),
    keys=("account_id",),
    props=(),
)


def _ledger_ids(driver) -> set[str]:
    records, _, _ = driver.execute_query(
        f"MATCH (b:{s.SCORE_BATCH.label}) RETURN b.{s.SCORE_BATCH.key} AS id", database_="neo4j"
    )
    return {r["id"] for r in records}


def test_a_committed_batch_is_skipped_and_another_constraint_violation_is_an_error(empty_graph):
    writer = BatchWriter(empty_graph, "neo4j", "score-test-1", job="test", ledger=s.SCORE_BATCH)
    writer.ensure_constraints()
    assert writer.write(CREATE_ACCOUNTS, {"account_id": ["a1", "a2"]}, "batch-1") is True
    # The same batch again: the ledger says it is committed, so it is skipped (nothing written twice).
    assert writer.write(CREATE_ACCOUNTS, {"account_id": ["a1", "a2"]}, "batch-1") is False
    # A new batch whose rows break the Account key's constraint: not "already committed", an error; its ledger
    # entry rolled back with it.
    with pytest.raises(GraphWriteError, match="constraint violated"):
        writer.write(CREATE_ACCOUNTS, {"account_id": ["a3", "a1"]}, "batch-2")
    assert _ledger_ids(empty_graph) == {"batch-1"}
    records, _, _ = empty_graph.execute_query(f"MATCH (a:{s.ACCOUNT.label}) RETURN count(a) AS n", database_="neo4j")
    assert records[0]["n"] == 2
