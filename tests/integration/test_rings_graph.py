"""Ring grouping against the real Neo4j on a hand-made graph whose right answer is known."""

from __future__ import annotations

import neo4j
import pandas as pd

from graph import schema as s
from serving.ring_grouping import GroupingPolicy
from serving.ring_links import (
    candidates_from_graph,
    read_candidates,
    read_ring_neighbours,
    ring_neighbours_from_graph,
)
from serving.rings import ring_membership, run_rings
from serving.score import write_scores
from tests.scored_graph import scored_exchange

DB = "neo4j"


HAND_MADE_RINGS = """
UNWIND $accounts AS row
CREATE (a:Account {account_id: row.id, risk_label: row.label, risk_score: row.score, risk_run_id: 'hand',
                   created_at: datetime({epochMillis: row.t})})
WITH collect(a) AS accounts
UNWIND $links AS link
MATCH (a:Account {account_id: link.account})
CALL (a, link) {
  WITH a, link WHERE link.kind = 'device' MERGE (d:Device {device_id: link.key}) CREATE (a)-[:USED_DEVICE]->(d)
  UNION
  WITH a, link WHERE link.kind = 'ip'
  MERGE (i:IP {ip: link.key}) SET i.prefix = link.prefix CREATE (a)-[:USED_IP]->(i)
  UNION
  WITH a, link WHERE link.kind = 'transfer'
  MATCH (b:Account {account_id: link.key}) CREATE (a)-[:TRANSFERRED_TO {asset: 'BTC', count: 3}]->(b)
}
RETURN count(*) AS n
"""


def hand_made_graph(driver: neo4j.Driver) -> None:
    """Three rings and the decoys grouping must ignore.

    ring A: a0–a4 share device dA; ring B: b0–b4 transfer in a chain; ring C: c0–c5 sign up from six IPs of one
    /24 block (a bot farm: no single IP shared). Decoys: every account above plus 150 clear ones share a
    NAT IP (a super-node); h0–h1, flagged, share a household device (a pair is no ring); a flagged clear-
    looking x0 uses ring A's device but is flagged (joins A). Expansion: n000, scored as clear as the decoys,
    paid b1 and b3 (tied to two members: joins B); n001 shares a device with a0 and paid it (one member: stays
    out); n002 paid c0 and c1 (a bot farm: not expanded); n003 shares a device with a1 alone but signed up with
    the rings, which signed up within milliseconds (a sign-up burst: joins A). The other decoys signed up a month
    apart.
    """
    accounts = [
        {"id": f"{r}{i}", "label": k, "score": 0.9 - i / 100, "t": 1_700_000_000_000 + i}
        for r, k, n in (("a", s.COLLUSION, 5), ("b", s.COLLUSION, 5), ("c", s.BOT_FARM, 6), ("h", s.PROMO_ABUSE, 2))
        for i in range(n)
    ]
    accounts += [{"id": "x0", "label": s.COLLUSION, "score": 0.7, "t": 1_700_000_000_000}]
    month = 30 * 86_400_000
    accounts += [
        {"id": f"n{i:03d}", "label": s.CLEAR, "score": 0.01, "t": 1_700_000_000_000 + (i != 3) * (i + 1) * month}
        for i in range(150)
    ]
    links = [{"account": f"a{i}", "kind": "device", "key": "dA"} for i in range(5)]
    links += [{"account": "x0", "kind": "device", "key": "dA"}]
    links += [{"account": f"b{i}", "kind": "transfer", "key": f"b{i + 1}"} for i in range(4)]
    links += [{"account": f"c{i}", "kind": "ip", "key": f"10.9.8.{i + 1}", "prefix": "10.9.8.0/24"} for i in range(6)]
    links += [{"account": f"h{i}", "kind": "device", "key": "dH"} for i in range(2)]
    links += [{"account": "n000", "kind": "transfer", "key": b} for b in ("b1", "b3")]
    links += [{"account": "n001", "kind": "device", "key": "dN"}, {"account": "a0", "kind": "device", "key": "dN"}]
    links += [{"account": "n001", "kind": "transfer", "key": "a0"}]
    links += [{"account": "n003", "kind": "device", "key": "dS"}, {"account": "a1", "kind": "device", "key": "dS"}]
    links += [{"account": "n002", "kind": "transfer", "key": c} for c in ("c0", "c1")]
    links += [{"account": a["id"], "kind": "ip", "key": "100.64.0.1", "prefix": "100.64.0.0/24"} for a in accounts]
    driver.execute_query(HAND_MADE_RINGS, accounts=accounts, links=links, database_=DB)


def test_rings_follow_shared_identifiers_blocks_and_money_not_super_nodes(empty_graph, driver):
    hand_made_graph(driver)
    summary = run_rings(driver, DB)
    members = {frozenset(m) for m in ring_membership(driver, DB).values()}
    assert members == {
        frozenset({"a0", "a1", "a2", "a3", "a4", "x0", "n003"}),
        frozenset({*(f"b{i}" for i in range(5)), "n000"}),
        frozenset({f"c{i}" for i in range(6)}),
    }
    assert summary["admitted"] == 2  # n000, n003: every other member is flagged on its own score
    by_first = {r["members"][0]: r for r in summary["top"]}
    assert by_first["c0"]["kind"] == s.BOT_FARM and "1 network block" in by_first["c0"]["evidence"]
    assert by_first["b0"]["internal_transfers"] == 12 and by_first["a0"]["size"] == 7
    assert "1 joined through ties to its members" in by_first["b0"]["evidence"]
    records, _, _ = driver.execute_query(
        "MATCH (r:Ring) RETURN r.ring_id AS id, r.first_seen AS fs, r.last_detected AS ld, r.status AS status",
        database_=DB,
    )
    assert all(r["status"] == "active" and r["fs"] is not None for r in records)


def _frame(candidates):
    accounts = candidates.accounts.drop(columns=["run_id", "verdict", "first_seen", "last_seen"])
    return accounts.assign(known_label=accounts["known_label"].where(accounts["known_label"].notna(), None))


def test_candidates_read_by_cypher_equal_those_built_in_memory_and_ring_members_get_flagged(
    empty_graph, driver, tmp_path
):
    exchange = scored_exchange(driver, tmp_path)
    write_scores(driver, DB, exchange.run, exchange.plan)
    thresholds = exchange.run.thresholds
    policy = GroupingPolicy()
    from_neo4j = read_candidates(driver, DB, thresholds, policy)
    in_memory = candidates_from_graph(exchange.graph, exchange.plan, thresholds, policy)
    pd.testing.assert_frame_equal(_frame(from_neo4j), _frame(in_memory), check_dtype=False)
    assert from_neo4j.shared == in_memory.shared and len(from_neo4j.shared) > 20
    assert {i.label for i in from_neo4j.shared} >= {"Device", "IP", "IPBlock"}
    money = ["src", "dst", "type"]
    pd.testing.assert_frame_equal(
        from_neo4j.money[money].sort_values(money, ignore_index=True),
        in_memory.money[money].sort_values(money, ignore_index=True),
    )
    # The neighbours a ring's expansion reads: the same accounts, rows and ties.
    members = from_neo4j.accounts.loc[from_neo4j.accounts["seed"], "account_id"].tolist()
    near_neo4j = read_ring_neighbours(driver, DB, members, thresholds, policy)
    near_memory = ring_neighbours_from_graph(exchange.graph, exchange.plan, thresholds, members, policy)
    assert len(near_neo4j.ties) > 50 and near_neo4j.ties["account_id"].nunique() > 20
    pd.testing.assert_frame_equal(near_neo4j.ties, near_memory.ties)
    pd.testing.assert_frame_equal(_frame(near_neo4j), _frame(near_memory), check_dtype=False)

    summary = run_rings(driver, DB, policy)
    assert summary["rings"] > 0 and summary["admitted"] > 0
    records, _, _ = driver.execute_query(
        "MATCH (a:Account)-[:MEMBER_OF]->(r:Ring {status: 'active'}) RETURN a.account_id AS id, a.risk_label AS "
        "label, a.risk_flagged_by AS by, a.risk_reasons AS reasons, r.ring_id AS ring, r.kind AS kind",
        database_=DB,
    )
    members = pd.DataFrame([dict(r) for r in records])
    admitted = members[members["by"] == s.FLAGGED_BY_RING]
    assert len(admitted) == summary["admitted"]
    assert (admitted["label"] == admitted["kind"]).all()
    bad = [
        (r, ring)
        for r, ring in zip(admitted["reasons"], admitted["ring"])
        if not r[0].startswith(f"member of ring {ring} ")
    ]
    assert not bad, bad[:3]
    own = exchange.plan.set_index("account_id")["label"]
    assert (own[admitted["id"]] == s.CLEAR).all()  # only accounts their own score left clear are admitted

    # A regrouping that finds no ring takes the flags back, reasons included.
    assert run_rings(driver, DB, GroupingPolicy(min_size=100_000))["unflagged"] == len(admitted)
    records, _, _ = driver.execute_query(
        "MATCH (a:Account) WHERE a.account_id IN $ids RETURN a.risk_label AS label, a.risk_flagged_by AS by, "
        "a.risk_reasons AS reasons",
        ids=admitted["id"].tolist(),
        database_=DB,
    )
    assert all(r["label"] == s.CLEAR and r["by"] == s.FLAGGED_BY_SCORE for r in records)
    assert not any(x.startswith("member of ring") for r in records for x in (r["reasons"] or []))
