"""Exactly once for any batch size, retry and concurrency; labels right under contention; nothing erased or
overflowed by a later folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from graph.queries.ingest import ACCOUNT_LABELS, ROWS_PARAM
from graph.writer import BatchWriter
from ingest.load import prepare, write_graph
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from tests.conftest import TEST_HASH_KEY, connect, wipe
from tests.graph_dump import dump
from tests.integration.test_ingest_graph import write_tiny_exchange

HASHER = Hasher(TEST_HASH_KEY)


def graph_only(driver) -> dict:
    """The graph without its write ledger (whose entries record which run wrote what)."""
    d = dump(driver)
    d["nodes"] = {k: v for k, v in d["nodes"].items() if k[0] != "IngestBatch"}
    return d


def ledger_size(driver) -> int:
    records, _, _ = driver.execute_query("MATCH (b:IngestBatch) RETURN count(b) AS n")
    return records[0]["n"]


@pytest.fixture(scope="module")
def exchange(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exchange")
    generate_exchange(600, 5, out, fmt="csv")
    return out


@pytest.fixture(scope="module")
def reference(exchange, neo4j_server) -> dict:
    """The graph one uninterrupted run at the default batch size builds."""
    with connect(neo4j_server) as driver:
        wipe(driver)
        write_graph(prepare(exchange, HASHER), BatchWriter(driver, "neo4j", "reference"))
        return graph_only(driver)


def test_the_same_folder_at_several_batch_sizes_in_turn_lands_once(exchange, reference, empty_graph):
    total = len(prepare(exchange, HASHER).chunks)
    for i, size in enumerate((150, 2_000, 37, 10_000)):
        written, skipped, _ = write_graph(prepare(exchange, HASHER, size), BatchWriter(empty_graph, "neo4j", f"s{i}"))
        assert (written, skipped) == ((total, 0) if i == 0 else (0, total))
    assert ledger_size(empty_graph) == total
    assert graph_only(empty_graph) == reference


def test_killed_at_one_batch_size_and_resumed_at_others_lands_once(
    exchange, reference, empty_graph, graph_env, tmp_path
):
    env = {**os.environ, **graph_env, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "serving",
        "ingest",
        str(exchange),
        "--batch-size",
        "200",
        "--rejects",
        str(tmp_path / "rejects"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while ledger_size(empty_graph) < 10:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"ingest ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial, total = ledger_size(empty_graph), len(prepare(exchange, HASHER).chunks)
    assert 0 < partial < total, "the kill should land mid-run"

    written, skipped, _ = write_graph(prepare(exchange, HASHER, 1_000), BatchWriter(empty_graph, "neo4j", "resume"))
    assert (written, skipped) == (total - partial, partial)
    written, skipped, _ = write_graph(prepare(exchange, HASHER, 50), BatchWriter(empty_graph, "neo4j", "again"))
    assert (written, skipped) == (0, total)
    assert graph_only(empty_graph) == reference


def test_two_overlapping_runs_of_one_folder_write_each_chunk_once(exchange, reference, empty_graph):
    runs = {"a": prepare(exchange, HASHER, 300), "b": prepare(exchange, HASHER, 700)}
    outcome: dict[str, tuple[int, int]] = {}
    errors: list[BaseException] = []

    def ingest(name: str) -> None:
        try:
            written, skipped, _ = write_graph(runs[name], BatchWriter(empty_graph, "neo4j", name))
            outcome[name] = (written, skipped)
        except BaseException as e:  # noqa: BLE001 — reported to the test thread
            errors.append(e)

    threads = [threading.Thread(target=ingest, args=(n,)) for n in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    total = len(runs["a"].chunks)
    assert outcome["a"][0] + outcome["b"][0] == total  # every chunk written by exactly one of the two runs
    assert ledger_size(empty_graph) == total
    assert graph_only(empty_graph) == reference


def _labels(account_ids: list[str], label: str, day: int) -> dict[str, list]:
    millis = int(pd.Timestamp(f"2026-01-{day:02d}T00:00:00Z").value // 1_000_000)
    return {
        "account_id": account_ids,
        "known_label": [label] * len(account_ids),
        "known_label_source": ["review"] * len(account_ids),
        "known_label_at": [millis] * len(account_ids),
    }


def stored_labels(driver) -> dict[str, str]:
    records, _, _ = driver.execute_query("MATCH (a:Account) RETURN a.account_id AS id, a.known_label AS label")
    return {r["id"]: r["label"] for r in records}


def test_an_older_label_never_replaces_a_newer_one_committed_meanwhile(empty_graph, tmp_path):
    """The interleaving that lost labels, forced: the newer label's transaction holds the account while the older
    one's arrives; the older must compare against the newer once it gets the account, not against what it read
    before."""
    write_tiny_exchange(tmp_path / "x", ["a", "b"], with_cards=False)
    write_graph(prepare(tmp_path / "x", HASHER), BatchWriter(empty_graph, "neo4j", "setup"))
    older = BatchWriter(empty_graph, "neo4j", "older")
    with empty_graph.session(database="neo4j") as session:
        tx = session.begin_transaction()
        tx.run(ACCOUNT_LABELS.cypher, {ROWS_PARAM: _labels(["a", "b"], "collusion", 2)}).consume()
        waiting = threading.Thread(
            target=older.write, args=(ACCOUNT_LABELS, _labels(["a", "b"], "benign", 1), "older-labels")
        )
        waiting.start()
        time.sleep(2.0)  # the older write is now waiting for the accounts' locks
        tx.commit()
    waiting.join(timeout=60)
    assert stored_labels(empty_graph) == {"a": "collusion", "b": "collusion"}


def test_two_overlapping_label_runs_keep_every_latest_label(empty_graph, tmp_path):
    ids = [f"acc_{i:04d}" for i in range(600)]
    for name, label, day in (("old", "benign", 1), ("new", "collusion", 2)):
        (tmp_path / name).mkdir()
        pd.DataFrame(
            {"account_id": ids, "label": label, "source": "review", "ts": f"2026-01-{day:02d}T00:00:00Z"}
        ).to_csv(tmp_path / name / "labels.csv", index=False)
    runs = [prepare(tmp_path / name, HASHER, 100) for name in ("old", "new")]
    for attempt in range(3):
        wipe(empty_graph)
        threads = [
            threading.Thread(target=write_graph, args=(run, BatchWriter(empty_graph, "neo4j", f"r{attempt}")))
            for run in runs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert set(stored_labels(empty_graph).values()) == {"collusion"}, f"attempt {attempt}"


def test_a_later_accounts_only_folder_keeps_the_user_agent(empty_graph, tmp_path):
    write_tiny_exchange(tmp_path / "d1", ["a", "b", "c"], with_cards=False)
    write_graph(prepare(tmp_path / "d1", HASHER), BatchWriter(empty_graph, "neo4j", "d1"))
    write_tiny_exchange(tmp_path / "d2", ["d", "e"], day=2, with_cards=False)
    for table in ("logins", "transfers"):
        (tmp_path / "d2" / f"{table}.csv").unlink()
    write_graph(prepare(tmp_path / "d2", HASHER), BatchWriter(empty_graph, "neo4j", "d2"))
    records, _, _ = empty_graph.execute_query("MATCH (d:Device) RETURN d.device_id AS id, d.user_agent AS ua")
    assert {r["id"]: r["ua"] for r in records} == {"dev-0": "ua", "dev-1": "ua", "dev-2": "ua"}


def test_huge_amounts_are_rejected_and_no_total_overflows(empty_graph, tmp_path):
    write_tiny_exchange(tmp_path / "x", ["a", "b", "c"], with_cards=False)
    pd.DataFrame(
        {
            "ts": ["2026-01-02T00:00:00Z"] * 3,
            "from_account_id": ["a", "a", "b"],
            "to_account_id": ["b", "b", "c"],
            "asset": ["BTC"] * 3,
            "amount": ["1e308", "1e308", "2"],
        },
    ).to_csv(tmp_path / "x" / "transfers.csv", index=False)
    run = prepare(tmp_path / "x", HASHER)
    write_graph(run, BatchWriter(empty_graph, "neo4j", "huge"))
    assert len(run.validations["transfers"].rejects) == 2
    records, _, _ = empty_graph.execute_query("MATCH (:Account)-[t:TRANSFERRED_TO]->(:Account) RETURN t.total AS total")
    assert [r["total"] for r in records] == [2.0]
