"""Erasure of an account (GDPR Art. 17), end to end through the command line against the real Neo4j:
erase → its personal data is gone from the graph, the snapshots and the scoring plans, other accounts' shared
identifiers untouched → ingesting the same folder again, or an older export, does not bring it back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gnn.snapshot import read_snapshot, read_snapshot_tables
from graph import schema as s
from graph.runs import new_run_id
from ingest.erasure import erasure_hash
from ingest.privacy import Hasher
from serving.rings import ring_membership, run_rings
from serving.score import load_plan, plan_from_scores, save_plan, write_scores
from tests.conftest import TEST_HASH_KEY
from tests.graph_dump import dump

ERASED, B, C = "acc-erased", "acc-b", "acc-c"
DB = "neo4j"


def write_exchange(folder: Path, extra_login_day: int | None = None) -> None:
    """Three accounts: the one to erase has its own email, phone, card, signup device and IP, and shares a
    login device with B; it sends money to B and referred C."""
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "account_id": [ERASED, B, C],
            "created_at": ["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"],
            "email": ["erased.person@mail.test", "b@mail.test", ""],
            "phone": ["+15550100001", "", ""],
            "country": ["DE", "FR", "FR"],
            "kyc_level": ["1", "2", "1"],
            "referrer_id": ["", "", ERASED],
            "signup_ip": ["203.0.113.9", "198.51.100.1", "198.51.100.1"],
            "signup_device_id": ["dev-own", "dev-shared", "dev-c"],
        }
    ).to_csv(folder / "accounts.csv", index=False)
    logins = [
        (ERASED, "2026-01-04T10:00:00Z", "203.0.113.9", "dev-shared"),
        (B, "2026-01-04T11:00:00Z", "198.51.100.1", "dev-shared"),
    ]
    if extra_login_day is not None:  # a later export: new events of both accounts
        logins += [
            (ERASED, f"2026-02-{extra_login_day:02d}T10:00:00Z", "203.0.113.77", "dev-new-own"),
            (B, f"2026-02-{extra_login_day:02d}T11:00:00Z", "198.51.100.1", "dev-shared"),
        ]
    pd.DataFrame(logins, columns=["account_id", "ts", "ip", "device_id"]).assign(user_agent="ua").to_csv(
        folder / "logins.csv", index=False
    )
    pd.DataFrame(
        {
            "account_id": [ERASED, B],
            "ts": ["2026-01-05T10:00:00Z"] * 2,
            "card_number": ["4111111111111111", "5500 0055 5555 5559"],
            "event_type": ["deposit"] * 2,
            "amount": ["10", "20"],
        }
    ).to_csv(folder / "card_events.csv", index=False)
    pd.DataFrame(
        {
            "ts": ["2026-01-06T10:00:00Z"],
            "from_account_id": [ERASED],
            "to_account_id": [B],
            "asset": ["BTC"],
            "amount": ["1.5"],
        }
    ).to_csv(folder / "transfers.csv", index=False)
    pd.DataFrame(
        {"account_id": [ERASED], "label": ["collusion"], "source": ["review"], "ts": ["2026-01-07T10:00:00Z"]}
    ).to_csv(folder / "labels.csv", index=False)


def values_anywhere(graph: dict[str, Any]) -> set[str]:
    """Every text in the graph: node keys and every property value (lists flattened)."""
    found: set[str] = set()
    for props in [*graph["nodes"].values(), *graph["rels"].values()]:
        for value in props.values():
            for v in value if isinstance(value, list) else [value]:
                found.add(str(v))
    found.update(str(k) for key in graph["rels"] for k in key)
    return found


def test_erasure_end_to_end(run_cli, empty_graph, settings, tmp_path):
    driver = empty_graph
    write_exchange(tmp_path / "export")
    code, _, err = run_cli("ingest", str(tmp_path / "export"), "--rejects", str(tmp_path / "rejects"))
    assert code == 0, err
    snapshots = settings.data_dir.resolve() / "snapshots"
    code, _, err = run_cli("snapshot", "--out", str(snapshots / "s1"))
    assert code == 0, err
    code, _, err = run_cli("snapshot", "--out", str(tmp_path / "elsewhere"))
    assert code == 0, err
    # A scoring plan on disk that flags the account, written back; a ring and a verdict naming it.
    graph = read_snapshot(snapshots / "s1")
    labels = np.array([s.COLLUSION if a == ERASED else s.CLEAR for a in graph.ids[s.ACCOUNT.label]], dtype=object)
    scores = np.where(labels[:, None] == s.COLLUSION, 0.9, 0.05) * np.ones((graph.num_accounts, 3))
    run, plan = plan_from_scores(
        graph, scores, labels, "rule", thresholds=dict.fromkeys(s.THREATS, 0.5), train_end=None
    )
    plan_dir = settings.data_dir.resolve() / "scoring" / run.run_id
    save_plan(plan_dir, run, plan)
    write_scores(driver, DB, run, plan)
    code, _, err = run_cli("verdict", ERASED, "confirmed", "--threat", "collusion", "--note", "same card as B")
    assert code == 0, err
    driver.execute_query(
        "CREATE (:Ring {ring_id: 'R-test', members: $m, size: 3, status: 'retired'})", m=[ERASED, B, C], database_=DB
    )
    before = dump(driver)

    code, out, err = run_cli(
        "erase", ERASED, "--reason", "GDPR request 42", "--snapshot", str(tmp_path / "elsewhere"), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["account_deleted"] and not result["already_erased"]
    assert result["identifiers"] == {"Card": 1, "Device": 1, "Email": 1, "IP": 1, "Phone": 1}
    assert result["verdicts"] == 1 and result["rings"] == 1
    assert sorted(result["snapshots"]) == sorted([str(snapshots / "s1"), str((tmp_path / "elsewhere").resolve())])
    assert result["plans"] == [str(plan_dir)]

    after = dump(driver)
    assert ERASED not in values_anywhere(after)
    assert "dev-own" not in values_anywhere(after) and "203.0.113.9" not in values_anywhere(after)
    # What other accounts use stays, with their relationships; their own data is untouched.
    assert (s.USED_DEVICE.type, B, "dev-shared", None) in after["rels"]
    assert (s.USED_IP.type, C, "198.51.100.1", None) in after["rels"]
    for key, props in before["nodes"].items():
        if key[0] == s.ACCOUNT.label and key[1] in (B, C):
            assert after["nodes"][key] == props
    assert after["nodes"][("Ring", "R-test")]["members"] == [B, C] and after["nodes"][("Ring", "R-test")]["size"] == 2
    tombstones = [p for (label, _), p in after["nodes"].items() if label == s.ERASURE.label]
    assert len(tombstones) == 1
    assert tombstones[0]["account_hash"] == erasure_hash(Hasher(TEST_HASH_KEY), ERASED)
    assert tombstones[0]["reason"] == "GDPR request 42" and tombstones[0]["run_id"] == result["run_id"]

    # Snapshots rewritten without it (features recomputed, still readable); the plan's row blanked.
    for folder in (snapshots / "s1", tmp_path / "elsewhere"):
        tables, _, _ = read_snapshot_tables(folder)
        assert ERASED not in set(tables.nodes[s.ACCOUNT.label][s.ACCOUNT.key])
        assert "dev-own" not in set(tables.nodes[s.DEVICE.label][s.DEVICE.key])
        assert "dev-shared" in set(tables.nodes[s.DEVICE.label][s.DEVICE.key])
        assert read_snapshot(folder).num_accounts == 2
    _, blanked = load_plan(plan_dir)
    assert len(blanked) == len(plan) and ERASED not in set(blanked[s.ACCOUNT.key].dropna())

    # Scores and rings recompute without it: a run of the blanked plan writes back (its empty row skipped),
    # grouping runs, and nothing names the account.
    outcome = write_scores(driver, DB, replace(run, run_id=new_run_id("score")), blanked)
    assert outcome["written"] == 2
    run_rings(driver, DB)
    assert all(ERASED not in members for members in ring_membership(driver, DB).values())

    # The same folder again: nothing comes back; its rows of the erased account are reported as skipped.
    erased_state = dump(driver)
    code, out, err = run_cli("ingest", str(tmp_path / "export"), "--rejects", str(tmp_path / "rejects"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["erased_rows"] == {"accounts": 1, "logins": 1, "card_events": 1, "transfers": 1, "labels": 1}
    assert report["chunks"]["written"] == 0 and ERASED not in values_anywhere(dump(driver))
    assert {k: v for k, v in dump(driver)["nodes"].items() if k[0] != "IngestBatch"} == {
        k: v for k, v in erased_state["nodes"].items() if k[0] != "IngestBatch"
    }

    # An older export with new events of both accounts: B's are written, the erased account's are not.
    write_exchange(tmp_path / "old-export", extra_login_day=3)
    code, out, err = run_cli("ingest", str(tmp_path / "old-export"), "--rejects", str(tmp_path / "rejects2"), "--json")
    assert code == 0, err
    assert json.loads(out)["erased_rows"]["logins"] == 2
    final = dump(driver)
    assert ERASED not in values_anywhere(final)
    assert "dev-new-own" not in values_anywhere(final) and "203.0.113.77" not in values_anywhere(final)
    assert (
        final["rels"][(s.USED_DEVICE.type, B, "dev-shared", None)]["count"]
        > erased_state["rels"][(s.USED_DEVICE.type, B, "dev-shared", None)]["count"]
    )

    # Erasing again: nothing left to remove, and it says so.
    code, out, err = run_cli("erase", ERASED, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["already_erased"] and not again["account_deleted"] and again["identifiers"] == {}
    code, out, _ = run_cli("erase", ERASED)
    assert code == 0 and "already erased" in out
