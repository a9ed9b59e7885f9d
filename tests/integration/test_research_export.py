"""An investigation becomes a research data set: ``ringwatch snapshot --ring / --accounts`` against the real Neo4j,
read back by the research loaders; and the public data sets' real files when the shared copies are present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnn.research.datasets import load_dataset
from gnn.snapshot import read_snapshot
from graph import schema as s
from tests.scored_graph import ingest_exchange

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture()
def ringed_exchange(empty_graph, tmp_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A 600-account exchange with one planted collusion ring written as a (:Ring) and its members."""
    truth = ingest_exchange(empty_graph, tmp_path, accounts=600, seed=5)
    ring = truth[truth["label"] == s.COLLUSION]
    members = sorted(ring[ring["ring_id"] == ring["ring_id"].iloc[0]]["account_id"])
    empty_graph.execute_query(
        f"MERGE (r:{s.RING.label} {{{s.RING.key}: $ring}}) SET r.status = 'active' WITH r "
        f"UNWIND $members AS id MATCH (a:{s.ACCOUNT.label} {{{s.ACCOUNT.key}: id}}) "
        f"MERGE (a)-[:{s.MEMBER_OF.type}]->(r)",
        ring="R-test",
        members=members,
    )
    return truth, members


def test_snapshot_of_a_ring_neighbourhood_is_a_research_data_set(ringed_exchange, graph_env, run_cli, driver, tmp_path):
    from gnn.build import risk_graph_from_neo4j

    truth, members = ringed_exchange
    code, out, err = run_cli("snapshot", "--out", str(tmp_path / "ring"), "--ring", "R-test", "--hops", "1", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert "neighbourhood of" in summary["source"]
    graph = read_snapshot(tmp_path / "ring")
    ids = set(graph.ids[s.ACCOUNT.label])
    assert set(members) <= ids
    assert len(members) < len(ids) < len(truth)  # the members' neighbours came along, not the whole exchange
    ds = load_dataset("snapshot", tmp_path / "ring")
    assert ds.target_type == s.ACCOUNT.label and len(ds.labels) == len(ids)
    full = risk_graph_from_neo4j(driver, "neo4j")
    everyone = sorted(ids)
    expected = full.labels[full.account_index(everyone)]
    # the known labels travel with the neighbourhood: threat → 1, benign → 0, unlabelled → -1
    assert ds.labels[graph.account_index(everyone)].tolist() == np.where(expected < 0, -1, expected > 0).tolist()
    assert ds.data[s.ACCOUNT.label].x.shape[0] == len(ids)

    wider_code, wider_out, _ = run_cli(
        "snapshot", "--out", str(tmp_path / "wider"), "--ring", "R-test", "--hops", "2", "--json"
    )
    assert wider_code == 0
    assert json.loads(wider_out)["nodes"][s.ACCOUNT.label] > summary["nodes"][s.ACCOUNT.label]


def test_snapshot_of_listed_accounts_and_unknown_ones(ringed_exchange, graph_env, run_cli, tmp_path):
    truth, members = ringed_exchange
    listed = tmp_path / "accounts.txt"
    listed.write_text(f"{members[0]}\n\n", encoding="utf-8")
    code, out, err = run_cli(
        "snapshot", "--out", str(tmp_path / "one"), "--accounts", str(listed), "--hops", "0", "--json"
    )
    assert code == 0, err
    assert members[0] in set(read_snapshot(tmp_path / "one").ids[s.ACCOUNT.label])
    listed.write_text("no-such-account\n", encoding="utf-8")
    code, _, err = run_cli("snapshot", "--out", str(tmp_path / "none"), "--accounts", str(listed))
    assert code == 1 and "none of the 1 accounts" in err
    code, _, err = run_cli("snapshot", "--out", str(tmp_path / "none"), "--ring", "R-missing")
    assert code == 1 and "R-missing" in err


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the shared public data sets are not at {SHARED}")
@pytest.mark.parametrize(
    ("name", "path", "accounts", "labelled", "positives"),
    [
        ("amlsim", "amlsim/20K_fanin200cycle200.tgz", 20_000, 20_000, 1_804),
        ("sffsd", "sffsd/S-FFSD.zip", 30_346, 4_395, 3_561),
        ("bitcoin-otc", "bitcoin_otc/otc_network.csv", 5_881, 316, 180),
    ],
)
def test_real_public_files_load_with_their_published_counts(name, path, accounts, labelled, positives) -> None:
    ds = load_dataset(name, SHARED / path)
    summary = ds.summary()
    assert summary["nodes"][ds.target_type] == accounts
    assert (summary["labelled"], summary["positives"]) == (labelled, positives)
