"""Export against the real Neo4j: frames equal ingestion's rows, same graph and hash, snapshot round trip."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from gnn.build import build_risk_graph, tables_from_graph_rows
from gnn.export import GraphTables, export_graph
from gnn.graph_data import RiskGraph
from gnn.snapshot import MANIFEST, SnapshotError, read_snapshot, read_snapshot_tables, write_snapshot
from gnn.snapshot_job import graph_source, snapshot_from_rows, take_snapshot
from graph import schema as s
from graph.queries.inspect import graph_counts
from graph.writer import BatchWriter
from ingest.load import PreparedRun, prepare, write_graph
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from tests.conftest import TEST_HASH_KEY, connect, wipe
from tests.integration.test_ingest_graph import HOSTILE, write_tiny_exchange

Exchange = tuple[PreparedRun, GraphTables, list[tuple[str, int, int]]]
PAGE = 499  # odd, so pages never line up with anything in the data; 1 500 accounts make 4 pages


@pytest.fixture(scope="module")
def exchange(neo4j_server, tmp_path_factory) -> Iterator[Exchange]:
    """A 1 500-account exchange ingested into the emptied test database, and its export (small pages)."""
    folder = tmp_path_factory.mktemp("exchange")
    generate_exchange(1500, 11, folder, fmt="csv")
    run = prepare(folder, Hasher(TEST_HASH_KEY))
    driver = connect(neo4j_server)
    try:
        wipe(driver)
        write_graph(run, BatchWriter(driver, "neo4j", "t"))
        calls: list[tuple[str, int, int]] = []
        tables = export_graph(driver, "neo4j", page_size=PAGE, progress=lambda *a: calls.append(a))
        yield run, tables, calls
    finally:
        driver.close()


def assert_tables_equal(a: GraphTables, b: GraphTables) -> None:
    assert list(a.nodes) == list(b.nodes) and list(a.rels) == list(b.rels)
    for name in a.nodes:
        pd.testing.assert_frame_equal(a.nodes[name], b.nodes[name], obj=name)
    for name in a.rels:
        pd.testing.assert_frame_equal(a.rels[name], b.rels[name], obj=name)


def assert_graphs_equal(a: RiskGraph, b: RiskGraph) -> None:
    assert a.content_hash == b.content_hash and a.reference_time == b.reference_time
    assert a.feature_names == b.feature_names
    assert a.ids.keys() == b.ids.keys() and all(np.array_equal(a.ids[k], b.ids[k]) for k in a.ids)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.created_at, b.created_at)
    assert a.data.node_types == b.data.node_types and a.data.edge_types == b.data.edge_types
    for t in a.data.node_types:
        assert torch.equal(a.data[t].x, b.data[t].x), t
    for t in a.data.edge_types:
        assert torch.equal(a.data[t].edge_index, b.data[t].edge_index), t


def test_export_equals_what_ingestion_wrote(exchange, neo4j_server):
    run, exported, calls = exchange
    expected = tables_from_graph_rows(run.graph_rows)
    assert_tables_equal(exported, expected)
    driver = connect(neo4j_server)
    try:
        counts = graph_counts(driver, "neo4j")
    finally:
        driver.close()
    assert {k: len(v) for k, v in {**exported.nodes, **exported.rels}.items()} == counts
    assert counts["Account"] == 1500 and counts["TRANSFERRED_TO"] > 1000
    # Every stage reported progress up to its total, through many pages.
    finals = {stage: (done, total) for stage, done, total in calls}
    assert finals["Account"] == (1500, 1500) and finals["USED_IP"] == (counts["USED_IP"],) * 2
    assert sum(1 for stage, _, _ in calls if stage == "Account") == -(-1500 // PAGE)


def test_export_and_graph_rows_build_the_same_graph(exchange):
    run, exported, _ = exchange
    from_neo4j = build_risk_graph(*exported)
    from_rows = build_risk_graph(*tables_from_graph_rows(run.graph_rows))
    assert_graphs_equal(from_neo4j, from_rows)
    assert from_neo4j.num_accounts == 1500
    assert (from_neo4j.labels >= 0).sum() == len(run.graph_rows["Account.label"])
    for rel in s.DOMAIN_RELS:
        forward = from_neo4j.data[rel.edge_type].edge_index
        reverse = from_neo4j.data[rel.target.label, "rev_" + rel.type, rel.source.label].edge_index
        assert torch.equal(forward.flip(0), reverse)


def test_snapshot_round_trip(exchange, tmp_path):
    _, exported, _ = exchange
    graph = build_risk_graph(*exported)
    manifest = write_snapshot(exported, tmp_path / "snap", graph=graph, source="neo4j://user:secret@db.example:7687")
    assert manifest["source"] == "neo4j://db.example:7687"
    assert "secret" not in (tmp_path / "snap" / MANIFEST).read_text()
    assert manifest["counts"]["nodes"]["Account"] == 1500 and manifest["schema_version"] == s.SCHEMA_VERSION
    assert_graphs_equal(read_snapshot(tmp_path / "snap"), graph)
    tables, _, _ = read_snapshot_tables(tmp_path / "snap")
    assert_tables_equal(tables, exported)


def test_corrupted_snapshots_are_refused(exchange, tmp_path):
    _, exported, _ = exchange
    folder = tmp_path / "snap"
    write_snapshot(exported, folder)
    manifest_path = folder / MANIFEST
    good = json.loads(manifest_path.read_text())

    def refused_with(manifest: dict | str, match: str) -> None:
        manifest_path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
        with pytest.raises(SnapshotError, match=match):
            read_snapshot(folder)

    refused_with(
        {**good, "counts": {**good["counts"], "nodes": {**good["counts"]["nodes"], "Account": 1499}}},
        "manifest counts 1499 Account",
    )
    refused_with({**good, "content_hash": "0" * 64}, "content hash differs")
    refused_with({**good, "schema_version": 99}, "schema 99")
    refused_with(json.dumps(good)[:40], "cannot be read")
    manifest_path.write_text(json.dumps(good))
    read_snapshot(folder)  # intact again
    data = folder / "edges" / "USED_DEVICE.parquet"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(SnapshotError, match="corrupted"):
        read_snapshot(folder)
    with pytest.raises(SnapshotError, match="already exists"):
        write_snapshot(exported, folder)


def test_take_snapshot_reads_the_configured_graph(exchange, settings, driver, tmp_path):
    _, exported, _ = exchange
    summary = take_snapshot(driver, "neo4j", tmp_path / "cli-snap", source=graph_source(settings))
    assert summary.nodes["Account"] == 1500
    assert summary.content_hash == build_risk_graph(*exported).content_hash
    assert settings.neo4j_password.get_secret_value() not in (tmp_path / "cli-snap" / MANIFEST).read_text()
    assert read_snapshot(tmp_path / "cli-snap").content_hash == summary.content_hash


def test_snapshot_from_a_first_loads_rows_equals_the_snapshot_read_back(exchange, settings, driver, tmp_path):
    run, _, _ = exchange
    read_back = take_snapshot(driver, "neo4j", tmp_path / "read-back", source=graph_source(settings))
    from_rows = snapshot_from_rows(run.graph_rows, tmp_path / "from-rows", source=graph_source(settings))
    assert from_rows.content_hash == read_back.content_hash
    assert (from_rows.nodes, from_rows.edges, from_rows.reference_time) == (
        read_back.nodes,
        read_back.edges,
        read_back.reference_time,
    )
    assert set(from_rows.seconds) == {"rows", "features", "write"}
    assert_graphs_equal(read_snapshot(tmp_path / "from-rows"), read_snapshot(tmp_path / "read-back"))


# Non-BMP characters sort differently in UTF-16 (Java) and in code points (Python): pagination must not care.
ODD_IDS = [*HOSTILE, "\uff5e-fullwidth", "\U0001f600-emoji", "\U00010348-gothic", "Z", "a"]


def test_hostile_and_non_bmp_ids_survive_pagination(empty_graph, tmp_path, hasher):
    write_tiny_exchange(tmp_path / "x", ODD_IDS)
    pd.DataFrame(
        {
            "account_id": ["ghost-\U0001f47b", ODD_IDS[0]],
            "label": ["collusion", "benign"],
            "source": ["manual", "manual"],
            "ts": ["2026-01-09T00:00:00Z"] * 2,
        }
    ).to_csv(tmp_path / "x" / "labels.csv", index=False)
    run = prepare(tmp_path / "x", hasher)
    write_graph(run, BatchWriter(empty_graph, "neo4j", "t"))
    for page_size in (3, 1000):
        exported = export_graph(empty_graph, "neo4j", page_size=page_size)
        assert_tables_equal(exported, tables_from_graph_rows(run.graph_rows))
    accounts = exported.nodes["Account"].set_index("account_id")
    ghost = accounts.loc["ghost-\U0001f47b"]
    assert bool(ghost["stub"]) and ghost["known_label"] == "collusion" and pd.isna(ghost["created_at"])
    graph = build_risk_graph(*exported)
    assert graph.labels[graph.account_index(["ghost-\U0001f47b"])[0]] == 1
