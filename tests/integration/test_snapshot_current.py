"""A snapshot knows whether it still holds the graph: scoring reads it instead of exporting while no ringwatch
command has changed the graph, and exports again once one has."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gnn.estimator import RiskModel
from gnn.export import graph_fingerprint
from gnn.snapshot import read_manifest, read_snapshot
from gnn.snapshot_job import current_snapshot, take_snapshot
from gnn.train import TrainConfig
from graph import schema as s
from ingest.job import ingest_folder
from ingest.privacy import Hasher
from serving.score import load_plan
from serving.scoring_job import run_scoring
from serving.verdict import record_verdict
from tests.conftest import TEST_HASH_KEY
from tests.scored_graph import ingest_exchange

DB = "neo4j"


def _plan(summary_plan: str) -> pd.DataFrame:
    _, frame = load_plan(Path(summary_plan))
    return frame[[s.ACCOUNT.key, *s.THREATS, "label"]].sort_values(s.ACCOUNT.key, ignore_index=True)


def test_scoring_reads_the_snapshot_while_the_graph_is_unchanged_and_exports_once_it_changed(
    empty_graph, settings, tmp_path
):
    driver = empty_graph
    truth = ingest_exchange(driver, tmp_path, accounts=800, seed=5)
    snap = tmp_path / "snapshot"
    take_snapshot(driver, DB, snap, source="test")
    recorded = read_manifest(snap)["graph_fingerprint"]
    assert recorded == graph_fingerprint(driver, DB) and recorded[s.ACCOUNT.label] == 800
    assert recorded[s.INGEST_BATCH.label] > 0 and recorded[s.VERDICT.label] == 0
    assert current_snapshot(driver, DB, snap) is None
    # The same events again: the ledger lets nothing land twice, so the graph — and the snapshot — stay as they were.
    ingest_folder(tmp_path / "exchange", driver, DB, tmp_path / "again", Hasher(TEST_HASH_KEY), batch_size=2_000)
    assert current_snapshot(driver, DB, snap) is None

    model_dir = RiskModel(TrainConfig(epochs=1)).fit(read_snapshot(snap)).save(tmp_path / "model")
    from_snapshot = run_scoring(settings, driver, str(model_dir), new_run=True, monitor=False, snapshot=snap)
    exported = run_scoring(settings, driver, str(model_dir), new_run=True, monitor=False)
    assert from_snapshot.graph_from == str(snap) and "snapshot_read" in from_snapshot.seconds
    assert exported.graph_from == "export" and "export" in exported.seconds
    pd.testing.assert_frame_equal(_plan(from_snapshot.plan), _plan(exported.plan))  # writing scores changed nothing

    # A verdict changes what training and scoring read: the snapshot no longer holds the graph.
    record_verdict(driver, DB, str(truth["account_id"].iloc[0]), s.FALSE_POSITIVE)
    reason = current_snapshot(driver, DB, snap)
    assert reason is not None and f"{s.VERDICT.label} 0 → 1" in reason
    again = run_scoring(settings, driver, str(model_dir), new_run=True, monitor=False, snapshot=snap)
    assert again.graph_from == "export"


def test_a_partial_snapshot_is_never_taken_for_the_graph(empty_graph, tmp_path):
    driver = empty_graph
    truth = ingest_exchange(driver, tmp_path, accounts=500, seed=6)
    snap = tmp_path / "part"
    take_snapshot(driver, DB, snap, source="test", accounts=list(truth["account_id"].iloc[:5]), hops=1)
    assert read_manifest(snap)["graph_fingerprint"] is None
    assert "no fingerprint" in (current_snapshot(driver, DB, snap) or "")
