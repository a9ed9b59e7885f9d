"""Ring grouping, stable ids, ring recall and reasons, on tiny hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graph import schema as s
from gnn.graph_data import LABEL_CODES, UNLABELLED, RiskGraph
from serving.output_evaluation import ring_recall
from serving.reasons import account_reasons
from serving.rings import SharedIdentifier, detect_rings, group, link_graph, member_ring_id, stable_ids
from serving.score import neighbourhood


def _accounts(ids: list[str], labels: list[str] | None = None) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({"account_id": ids, "label": labels or [s.COLLUSION] * n, "score": np.linspace(0.9, 0.6, n),
                         "known_label": [None] * n, "verdict": [None] * n, "run_id": ["r"] * n,
                         "first_seen": np.arange(n) * 1000, "last_seen": np.arange(n) * 1000 + 5000})


NO_MONEY = pd.DataFrame(columns=["src", "dst", "type", "count"])


def test_two_rings_through_devices_and_transfers_and_a_pair_is_no_ring():
    ids = ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "c1", "c2"]
    shared = [SharedIdentifier("Device", "d1", ("a1", "a2", "a3"), 3),
              SharedIdentifier("Card", "k1", ("b1", "b2"), 2),
              SharedIdentifier("Device", "d2", ("c1", "c2"), 2)]
    money = pd.DataFrame({"src": ["a3", "b2"], "dst": ["a4", "b3"], "type": [s.TRANSFERRED_TO.type] * 2,
                          "count": [4, 2]})
    rings = detect_rings(_accounts(ids), shared, money, previous={})
    members = sorted(r.members for r in rings)
    assert members == [["a1", "a2", "a3", "a4"], ["b1", "b2", "b3"]]  # c1–c2 is a pair: below the minimum
    a_ring = next(r for r in rings if "a1" in r.members)
    assert a_ring.size == 4 and a_ring.internal_transfers == 4 and a_ring.shared == {"Device": 1}
    assert a_ring.first_seen == 0 and a_ring.last_seen == 3000 + 5000
    assert "1 device" in a_ring.evidence and "4 transfers" in a_ring.evidence
    assert a_ring.ring_id == member_ring_id(["a4", "a3", "a2", "a1"])


def test_kind_is_the_threat_with_the_largest_summed_score():
    ids = ["x1", "x2", "x3"]
    acc = _accounts(ids, [s.BOT_FARM, s.BOT_FARM, s.PROMO_ABUSE])
    acc["score"] = [0.3, 0.3, 0.9]
    rings = detect_rings(acc, [SharedIdentifier("IP", "ip", tuple(ids), 3)], NO_MONEY, previous={})
    assert rings[0].kind == s.PROMO_ABUSE
    assert abs(rings[0].score - 0.5) < 1e-9


def test_large_components_are_split_by_louvain():
    # Two 8-cliques joined by one weak link form one component; above split_above it splits in two.
    left, right = [f"l{i}" for i in range(8)], [f"r{i}" for i in range(8)]
    shared = [SharedIdentifier("Device", "dl", tuple(left), 8), SharedIdentifier("Device", "dr", tuple(right), 8),
              SharedIdentifier("IP", "bridge", ("l0", "r0"), 90)]
    g = link_graph(_accounts(left + right), shared, NO_MONEY)
    assert len(group(g, split_above=100)) == 1
    assert sorted(map(sorted, group(g, split_above=10))) == [sorted(left), sorted(right)]


def test_ring_ids_survive_small_membership_changes_and_stay_unique():
    previous = {"R-old1": {"a", "b", "c", "d"}, "R-old2": {"e", "f", "g"}}
    groups = [["a", "b", "c", "x"], ["e", "f", "g"], ["p", "q", "r"]]
    ids = stable_ids(groups, previous)
    assert ids[0] == "R-old1"  # 3 of 5 shared: Jaccard 0.6
    assert ids[1] == "R-old2"
    assert ids[2] == member_ring_id(["p", "q", "r"])
    # A group matching nothing closely enough gets a new id; one old ring is never given to two groups.
    ids = stable_ids([["a", "b"], ["c", "d"]], {"R-old1": {"a", "b", "c", "d"}})
    assert ids.count("R-old1") <= 1 and len(set(ids)) == 2
    assert stable_ids([["a", "z1", "z2", "z3"]], previous)[0] != "R-old1"  # Jaccard 1/7


def test_ring_recall_needs_80_percent_of_members_flagged_in_one_ring():
    truth = pd.DataFrame({"account_id": [f"m{i}" for i in range(10)] + ["n1"],
                          "label": [s.COLLUSION] * 5 + [s.BOT_FARM] * 5 + ["benign"],
                          "ring_id": ["p1"] * 5 + ["p2"] * 5 + [""]})
    flagged = {f"m{i}" for i in range(10)}
    rings = {"R1": ["m0", "m1", "m2", "m3", "n1"], "R2": ["m5", "m6", "m7"], "R3": ["m8", "m9"]}
    r = ring_recall(truth, flagged, rings)
    assert r["planted"] == 2 and r["detected"] == 3
    assert r["recovered"] == 1 and r["by_kind"][s.COLLUSION]["recovered"] == 1  # 4 of 5 = 80 %
    assert r["by_kind"][s.BOT_FARM]["recovered"] == 0  # split 3 + 2
    r = ring_recall(truth, flagged - {"m3"}, rings)
    assert r["recovered"] == 0  # m3 no longer flagged: 3 of 5


def _tiny_graph() -> RiskGraph:
    """6 accounts; device d0 shared by a0,a1,a2; a NAT IP shared by all; a0 → a5 transfer."""
    data = HeteroData()
    counts = {"Account": 6, "Device": 2, "IP": 1, "Card": 0, "Email": 0, "Phone": 0, "Wallet": 0, "Promo": 0}
    for label, n in counts.items():
        data[label].x = torch.zeros((n, 1))
        data[label].num_nodes = n
    edges = {s.USED_DEVICE: [[0, 1, 2, 3], [0, 0, 0, 1]], s.USED_IP: [[0, 1, 2, 3, 4, 5], [0] * 6],
             s.TRANSFERRED_TO: [[0], [5]]}
    for rel in s.DOMAIN_RELS:
        data[rel.edge_type].edge_index = torch.tensor(edges.get(rel, [[], []]), dtype=torch.long)
    ids = {label: np.array([f"{label[0].lower()}{i}" for i in range(n)], dtype=object) for label, n in counts.items()}
    labels = np.full(6, UNLABELLED, dtype=np.int8)
    labels[1] = LABEL_CODES[s.COLLUSION]
    return RiskGraph(data, ids, {k: ["f"] for k in counts}, labels, np.ones(6, dtype=np.int64), 0, "h")


def test_reasons_rank_small_risky_identifiers_and_skip_super_nodes():
    g = _tiny_graph()
    labels = np.array([s.COLLUSION, s.CLEAR, s.COLLUSION, s.CLEAR, s.CLEAR, s.BOT_FARM], dtype=object)
    reasons = account_reasons(g, labels, np.array([0]), supernode_cap=5)
    texts = reasons[0]
    assert texts[0].startswith("Device d0 shared with 2 risky accounts (1 known fraud) among 3 users")
    assert any(t.startswith("transfers with 1 risky account") and "a5" in t for t in texts)
    assert not any(t.startswith("IP ") for t in texts)  # 6 users > cap 5: a super-node explains nothing
    assert any(t.startswith("IP i0") for t in account_reasons(g, labels, np.array([0]), supernode_cap=10)[0])


def test_since_neighbourhood_follows_small_identifiers_and_money_not_super_nodes():
    g = _tiny_graph()
    assert sorted(neighbourhood(g, np.array([3]), hops=2, supernode_cap=5)) == [3]  # d1 is its own; IP is a super-node
    assert sorted(neighbourhood(g, np.array([1]), hops=1, supernode_cap=5)) == [0, 1, 2]
    assert sorted(neighbourhood(g, np.array([1]), hops=2, supernode_cap=5)) == [0, 1, 2, 5]  # then the transfer
    assert sorted(neighbourhood(g, np.array([3]), hops=1, supernode_cap=10)) == [0, 1, 2, 3, 4, 5]
