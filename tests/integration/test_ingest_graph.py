"""Ingestion against the real Neo4j: schema, idempotence, increments, resume, bulk = online, privacy."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from graph import schema as s
from graph.errors import ConfigurationError
from graph.writer import BatchWriter
from ingest.load import prepare, write_graph
from ingest.privacy import luhn_valid
from tests.graph_dump import counts, dump

HOSTILE = [
    "a'1",
    'a"2',
    "a`3`",
    "x}) DETACH DELETE n //",
    "') MATCH (n) DETACH DELETE n; //",
    "$rows",
    "acc with spaces, and comma",
    "naïve-ünïcødé-账户",
]


def write_tiny_exchange(folder: Path, accounts: list[str], day: int = 1, with_cards: bool = True) -> None:
    """A small exchange whose account ids are the given (possibly hostile) strings."""
    folder.mkdir(parents=True, exist_ok=True)
    ts = lambda h: f"2026-01-{day:02d}T{h:02d}:00:00Z"  # noqa: E731
    pd.DataFrame(
        {
            "account_id": accounts,
            "created_at": [ts(1)] * len(accounts),
            "email": [f"user{i}@mail.test" for i in range(len(accounts))],
            "phone": [f"+1555010{i:04d}" for i in range(len(accounts))],
            "country": ["DE"] * len(accounts),
            "kyc_level": ["1"] * len(accounts),
            "referrer_id": [None] + accounts[:-1],
            "signup_ip": ["192.0.2.7"] * len(accounts),
            "signup_device_id": [f"dev-{i % 3}" for i in range(len(accounts))],
        }
    ).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(
        {
            "account_id": accounts * 2,
            "ts": [ts(2)] * len(accounts) + [ts(3)] * len(accounts),
            "ip": ["198.51.100.1"] * (2 * len(accounts)),
            "device_id": [f"dev-{i % 3}" for i in range(len(accounts))] * 2,
            "user_agent": ["ua"] * (2 * len(accounts)),
        }
    ).to_csv(folder / "logins.csv", index=False)
    pd.DataFrame(
        {
            "ts": [ts(4)] * (len(accounts) - 1),
            "from_account_id": accounts[:-1],
            "to_account_id": accounts[1:],
            "asset": ["BTC"] * (len(accounts) - 1),
            "amount": ["1.25"] * (len(accounts) - 1),
        }
    ).to_csv(folder / "transfers.csv", index=False)
    if with_cards:
        pd.DataFrame(
            {
                "account_id": accounts,
                "ts": [ts(5)] * len(accounts),
                "card_number": ["4111111111111111", "5500 0055 5555 5559"] * (len(accounts) // 2)
                + ["4111111111111111"] * (len(accounts) % 2),
                "event_type": ["deposit"] * len(accounts),
                "amount": ["10"] * len(accounts),
            }
        ).to_csv(folder / "card_events.csv", index=False)


def ingest(folder: Path, driver, hasher, batch_size: int = 5):
    run = prepare(folder, hasher, batch_size)
    return run, write_graph(run, BatchWriter(driver, "neo4j", "test-run"))


def test_constraints_exist_for_every_business_key(empty_graph, tmp_path, hasher):
    write_tiny_exchange(tmp_path / "x", ["a", "b"])
    ingest(tmp_path / "x", empty_graph, hasher)
    recs, _, _ = empty_graph.execute_query(
        "SHOW CONSTRAINTS YIELD type, labelsOrTypes, properties WHERE type = 'UNIQUENESS' "
        "RETURN labelsOrTypes[0] AS label, properties[0] AS key"
    )
    found = {(r["label"], r["key"]) for r in recs}
    assert {(n.label, n.key) for n in s.ALL_NODES} <= found


def test_hostile_ids_are_stored_verbatim_and_harmless(empty_graph, tmp_path, hasher):
    write_tiny_exchange(tmp_path / "x", HOSTILE)
    run, _ = ingest(tmp_path / "x", empty_graph, hasher)
    recs, _, _ = empty_graph.execute_query("MATCH (a:Account) RETURN a.account_id AS id")
    assert sorted(r["id"] for r in recs) == sorted(HOSTILE)
    recs, _, _ = empty_graph.execute_query(
        "MATCH (a:Account)-[t:TRANSFERRED_TO]->(b:Account) RETURN a.account_id AS a, b.account_id AS b"
    )
    assert sorted((r["a"], r["b"]) for r in recs) == sorted(zip(HOSTILE[:-1], HOSTILE[1:]))
    c = counts(empty_graph)
    assert c["Device"] == 3 and c["REFERRED"] == len(HOSTILE) - 1


def test_same_folder_twice_leaves_the_graph_identical(empty_graph, tmp_path, hasher):
    write_tiny_exchange(tmp_path / "x", [f"acc_{i}" for i in range(23)])
    ingest(tmp_path / "x", empty_graph, hasher)
    first = dump(empty_graph)
    _, (written, skipped, _) = ingest(tmp_path / "x", empty_graph, hasher)
    assert written == 0 and skipped > 0
    assert dump(empty_graph) == first
    rel = first["rels"][("USED_DEVICE", "acc_0", "dev-0", None)]
    assert rel["count"] == 3 and rel["signup"] is True


def test_newer_folder_extends_counts_and_times(empty_graph, tmp_path, hasher):
    ids = [f"acc_{i}" for i in range(6)]
    write_tiny_exchange(tmp_path / "d1", ids, day=1)
    write_tiny_exchange(tmp_path / "d2", ids + ["acc_new"], day=9)
    (tmp_path / "d2" / "accounts.csv").unlink()  # only events in the second drop; acc_new becomes a stub
    ingest(tmp_path / "d1", empty_graph, hasher)
    ingest(tmp_path / "d2", empty_graph, hasher)
    d = dump(empty_graph)
    rel = d["rels"][("USED_DEVICE", "acc_0", "dev-0", None)]
    assert rel["count"] == 3 + 2
    assert rel["first_seen"].day == 1 and rel["last_seen"].day == 9
    flow = d["rels"][("TRANSFERRED_TO", "acc_0", "acc_1", "BTC")]
    assert flow["count"] == 2 and flow["total"] == pytest.approx(2.5)
    assert d["nodes"][("Account", "acc_new")]["stub"] is True
    assert d["nodes"][("Account", "acc_0")]["stub"] is False


def test_stub_account_is_filled_in_by_a_later_accounts_row(empty_graph, tmp_path, hasher):
    write_tiny_exchange(tmp_path / "d1", ["a", "b"])
    (tmp_path / "d1" / "accounts.csv").unlink()
    ingest(tmp_path / "d1", empty_graph, hasher)
    assert dump(empty_graph)["nodes"][("Account", "a")] == {"account_id": "a", "stub": True}
    write_tiny_exchange(tmp_path / "d2", ["a", "b"], day=2)
    ingest(tmp_path / "d2", empty_graph, hasher)
    node = dump(empty_graph)["nodes"][("Account", "a")]
    assert node["stub"] is False and node["country"] == "DE"


def test_no_card_number_anywhere_in_the_database(empty_graph, tmp_path, hasher):
    write_tiny_exchange(tmp_path / "x", [f"acc_{i}" for i in range(10)])
    ingest(tmp_path / "x", empty_graph, hasher)
    d = dump(empty_graph)
    values = [str(v) for props in list(d["nodes"].values()) + list(d["rels"].values()) for v in props.values()]
    values += [str(k) for k in d["nodes"]] + [str(k) for k in d["rels"]]
    runs = [m for v in values for m in re.findall(r"\d{12,19}", v)]
    assert not [r for r in runs if luhn_valid(r)], "a Luhn-valid digit run (card number?) is stored"
    assert not any("4111111111111111" in v or "5500005555555559" in v for v in values)
    cards, _, _ = empty_graph.execute_query("MATCH (c:Card) RETURN c.bin AS bin, c.last4 AS last4")
    assert sorted((r["bin"], r["last4"]) for r in cards) == [("411111", "1111"), ("550000", "5559")]


def test_personal_data_without_a_key_is_a_clear_error(empty_graph, tmp_path):
    write_tiny_exchange(tmp_path / "x", ["a", "b"])
    with pytest.raises(ConfigurationError, match="RINGWATCH_HASH_KEY"):
        prepare(tmp_path / "x", None)
    (tmp_path / "x" / "card_events.csv").unlink()
    accounts = pd.read_csv(tmp_path / "x" / "accounts.csv").assign(email=None, phone=None)
    accounts.to_csv(tmp_path / "x" / "accounts.csv", index=False)
    run = prepare(tmp_path / "x", None)  # no personal data left: no key needed
    assert "Card" not in run.graph_rows
