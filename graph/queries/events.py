"""Cypher for the online API's single-event write (:mod:`serving.api.events`).

An event's rows are written with ingestion's own write queries and ledger (:mod:`graph.queries.ingest`), in one
transaction; before them, :data:`EVENT_PRECHECK` asks the two things ingestion asks of a folder, for this
event's keys only (both are unique-constraint lookups): whether one of its accounts has an erasure tombstone,
and which of its ledger chunks are already committed.
"""

from __future__ import annotations

from typing import Final

from graph import schema as s

#: ``$account_hashes`` (keyed hashes of the event's account ids) and ``$batch_ids`` (its ledger chunk ids) →
#: ``erased`` (how many of the hashes have a tombstone) and ``committed`` (the chunk ids already in the ledger).
EVENT_PRECHECK: Final = (
    f"OPTIONAL MATCH (e:{s.ERASURE.label}) WHERE e.{s.ERASURE.key} IN $account_hashes\n"
    "WITH count(e) AS erased\n"
    f"OPTIONAL MATCH (b:{s.INGEST_BATCH.label}) WHERE b.{s.INGEST_BATCH.key} IN $batch_ids\n"
    f"RETURN erased, collect(b.{s.INGEST_BATCH.key}) AS committed"
)
#: The ledger entries of every part an event writes, in one statement: :func:`graph.queries.ingest.record_chunks`
#: with the kind and part on each chunk (``$chunks``: ``{id, index, rows, kind, part_id}`` maps); fails on the
#: uniqueness constraint when any of them already exists.
RECORD_EVENT_CHUNKS: Final = (
    "UNWIND $chunks AS chunk\n"
    f"CREATE (b:{s.INGEST_BATCH.label} {{{s.INGEST_BATCH.key}: chunk.id}})\n"
    "SET b.kind = chunk.kind, b.part_id = chunk.part_id, b.chunk = chunk.index, b.rows = chunk.rows,\n"
    "    b.run_id = $run_id, b.committed_at = datetime()"
)
