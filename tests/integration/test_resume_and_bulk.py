"""Exactly-once under failure, and the offline bulk importer building the same graph as online ingestion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graph.errors import GraphWriteError
from graph.writer import BatchWriter
from ingest.bulk import bulk_load
from ingest.load import prepare, write_graph
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from tests.conftest import TEST_HASH_KEY, connect, wipe
from tests.graph_dump import dump
from tests.integration.test_ingest_graph import HOSTILE, write_tiny_exchange

BATCH = 150


@pytest.fixture(scope="module")
def exchange(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exchange")
    generate_exchange(1500, 11, out, fmt="csv")
    return out


@pytest.fixture(scope="module")
def reference(exchange, neo4j_server) -> dict:
    """The graph an uninterrupted online run builds."""
    with connect(neo4j_server) as driver:
        wipe(driver)
        write_graph(prepare(exchange, _hasher(), BATCH), BatchWriter(driver, "neo4j", "reference"))
        return dump(driver)


def committed_batches(driver) -> int:
    recs, _, _ = driver.execute_query("MATCH (b:IngestBatch) RETURN count(b) AS n")
    return recs[0]["n"]


def test_killed_process_resumes_to_the_same_graph(exchange, reference, empty_graph, graph_env, tmp_path):
    env = {**os.environ, **graph_env, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "serving",
        "ingest",
        str(exchange),
        "--batch-size",
        str(BATCH),
        "--rejects",
        str(tmp_path / "rejects"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while committed_batches(empty_graph) < 5:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"ingest ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = committed_batches(empty_graph)
    total = len(prepare(exchange, _hasher(), BATCH).chunks)
    assert 0 < partial < total, "the kill should land mid-run"

    rerun = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f'"skipped": {partial}' in rerun.stdout
    assert dump(empty_graph) == reference


def test_neo4j_killed_mid_run_then_rerun_gives_the_same_graph(exchange, reference, empty_graph, neo4j_server):
    run = prepare(exchange, _hasher(), BATCH)
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            write_graph(run, BatchWriter(empty_graph, "neo4j", "killed"))
        except BaseException as e:  # noqa: BLE001 — reported to the test thread
            errors.append(e)

    worker = threading.Thread(target=ingest)
    worker.start()
    deadline = time.monotonic() + 120
    while committed_batches(empty_graph) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(neo4j_server.status().pid, signal.SIGKILL)
    worker.join(timeout=180)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], GraphWriteError), errors
    assert "rerun the command (with any --batch-size) to resume" in str(errors[0])

    neo4j_server.start(timeout=300)
    partial = committed_batches(empty_graph)
    assert 0 < partial < len(run.chunks)
    written, skipped, _ = write_graph(run, BatchWriter(empty_graph, "neo4j", "resume"))
    assert skipped == partial and written == len(run.chunks) - partial
    assert dump(empty_graph) == reference


def test_bulk_import_builds_the_online_graph(exchange, reference, empty_graph, neo4j_server):
    run = prepare(exchange, _hasher(), BATCH)
    bulk_load(run, neo4j_server, empty_graph, "neo4j", "bulk")
    with connect(neo4j_server) as fresh:
        assert dump(fresh) == reference
        # The ledger came along: the same folder online is now a no-op.
        written, skipped, _ = write_graph(run, BatchWriter(fresh, "neo4j", "after-bulk"))
        assert written == 0 and skipped == len(run.chunks)


def test_bulk_first_load_writes_the_snapshot_an_export_would(exchange, empty_graph, neo4j_server, tmp_path):
    from gnn.snapshot import read_snapshot
    from gnn.snapshot_job import snapshot_from_rows, take_snapshot
    from ingest.job import ingest_folder

    written: list = []
    ingest_folder(
        exchange,
        empty_graph,
        "neo4j",
        tmp_path / "rejects",
        _hasher(),
        BATCH,
        bulk_server=neo4j_server,
        on_bulk_loaded=lambda run: written.append(
            snapshot_from_rows(run.graph_rows, tmp_path / "from-rows", source="bulk")
        ),
    )
    assert len(written) == 1
    with connect(neo4j_server) as fresh:
        read_back = take_snapshot(fresh, "neo4j", tmp_path / "read-back", source="export")
    assert written[0].content_hash == read_back.content_hash
    assert written[0].nodes == read_back.nodes and written[0].edges == read_back.edges
    assert read_snapshot(tmp_path / "from-rows").content_hash == read_back.content_hash


def test_bulk_handles_hostile_ids_like_online(empty_graph, neo4j_server, tmp_path):
    write_tiny_exchange(tmp_path / "x", HOSTILE + ["multi\nline id"])
    run = prepare(tmp_path / "x", _hasher(), 4)
    write_graph(run, BatchWriter(empty_graph, "neo4j", "online"))
    online = dump(empty_graph)
    wipe(empty_graph)
    bulk_load(run, neo4j_server, empty_graph, "neo4j", "bulk")
    with connect(neo4j_server) as fresh:
        assert dump(fresh) == online


def test_bulk_refuses_a_database_that_is_not_empty(empty_graph, neo4j_server, tmp_path):
    write_tiny_exchange(tmp_path / "x", ["a", "b"])
    run = prepare(tmp_path / "x", _hasher(), 4)
    write_graph(run, BatchWriter(empty_graph, "neo4j", "online"))
    with pytest.raises(GraphWriteError, match="needs an empty database"):
        bulk_load(run, neo4j_server, empty_graph, "neo4j", "bulk")


def _hasher() -> Hasher:
    return Hasher(TEST_HASH_KEY)
