"""Node features on a hand-built graph: exact values, no label leakage, NaN-free, deterministic."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import gnn.features
from gnn.build import build_risk_graph, index_graph, tables_from_graph_rows
from gnn.feature_defs import referral_depth, window_counts
from gnn.graph_data import LABEL_CODES, UNLABELLED, RiskGraph
from gnn.snapshot import read_snapshot, write_snapshot

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms
H = 3_600_000


def rows() -> dict[str, pd.DataFrame]:
    """``prepare()``-style rows of a small exchange (every number below is checked by hand in the tests).

    Accounts a0–a4 signed up at 0, 0.5, 1, 2.5 and 10 h; s is a stub. Referrals a0→a1→a2 (a chain) and
    a3→a4→a3 (a cycle) with s hanging below it (a4→s).
    """
    created = [T0, T0 + H // 2, T0 + H, T0 + 5 * H // 2, T0 + 10 * H]
    ids = ["a0", "a1", "a2", "a3", "a4"]
    frame = pd.DataFrame
    return {
        "Account": frame(
            {
                "account_id": ids,
                "created_at": created,
                "country": ["DE", "DE", "FR", "FR", "US"],
                "kyc_level": [1, 2, 0, 3, 1],
                "stub": False,
                "email_domain": ["gmail.com", "gmail.com", None, "x.org", "gmail.com"],
            }
        ),
        "Account.stub": frame({"account_id": ["s"], "stub": [True]}),
        "Account.label": frame(
            {
                "account_id": ["a0", "a3"],
                "known_label": ["collusion", "benign"],
                "known_label_source": ["manual", "manual"],
                "known_label_at": [T0 + 20 * H] * 2,
            }
        ),
        "Device": frame({"device_id": ["d0", "d1", "d2"], "user_agent": ["ua", None, "ua"]}),
        "IP": frame(
            {
                "ip": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.168.1.1"],
                "version": 4,
                "prefix": ["10.0.0.0/24"] * 3 + ["192.168.1.0/24"],
            }
        ),
        "Wallet": frame({"address": ["w0"]}),
        "USED_DEVICE": frame(
            {
                "src": ["a0", "a0", "a1", "a2", "a3", "a4"],
                "dst": ["d0", "d2", "d0", "d0", "d1", "d2"],
                "count": [5, 2, 1, 1, 1, 1],
                "first_seen": [T0, T0 + 3 * H, *created[1:]],
                "last_seen": [T0 + 4 * H, T0 + 5 * H, *created[1:]],
                "signup": [True, False, True, True, True, True],
            }
        ),
        "USED_IP": frame(
            {
                "src": ids,
                "dst": ["10.0.0.1", "10.0.0.2", "192.168.1.1", "10.0.0.3", "10.0.0.1"],
                "count": 1,
                "first_seen": created,
                "last_seen": created,
                "signup": True,
            }
        ),
        "REFERRED": frame(
            {
                "src": ["a0", "a1", "a3", "a4", "a4"],
                "dst": ["a1", "a2", "a4", "a3", "s"],
                "at": [created[1], created[2], created[4], created[4], T0 + 11 * H],
            }
        ),
        "TRANSFERRED_TO": frame(
            {
                "src": ["a0", "a0", "a1", "a2"],
                "dst": ["a1", "a1", "a0", "a0"],
                "asset": ["BTC", "USDT", "BTC", "USDT"],
                "count": [2, 1, 1, 1],
                "total": [1.0, 100.0, 0.5, 300.0],
                "first_seen": T0 + 6 * H,
                "last_seen": T0 + 7 * H,
            }
        ),
        "WITHDREW_TO": frame(
            {
                "src": ["a0", "a0"],
                "dst": ["w0", "w0"],
                "asset": ["BTC", "ETH"],
                "count": [1, 1],
                "total": [0.1, 2.0],
                "first_seen": T0 + 8 * H,
                "last_seen": [T0 + 8 * H, T0 + 9 * H],
            }
        ),
    }


def build(graph_rows: dict[str, pd.DataFrame] | None = None, **kwargs) -> RiskGraph:
    return build_risk_graph(*tables_from_graph_rows(graph_rows or rows()), **kwargs)


def account_feature(graph: RiskGraph, name: str) -> dict[str, float]:
    column = graph.feature_names["Account"].index(name)
    return dict(zip(graph.ids["Account"], graph.data["Account"].x[:, column].tolist(), strict=True))


def node_feature(graph: RiskGraph, label: str, name: str) -> dict[str, float]:
    column = graph.feature_names[label].index(name)
    return dict(zip(graph.ids[label], graph.data[label].x[:, column].tolist(), strict=True))


def logged(**expected: float) -> dict[str, float]:
    return {k: float(np.float32(np.log1p(v))) for k, v in expected.items()}


def test_ids_labels_created_at_and_reference_time():
    graph = build()
    assert list(graph.ids["Account"]) == ["a0", "a1", "a2", "a3", "a4", "s"]
    assert graph.labels.tolist() == [LABEL_CODES["collusion"], UNLABELLED, UNLABELLED, 0, UNLABELLED, UNLABELLED]
    assert graph.created_at.tolist()[:2] == [T0 // 1000, (T0 + H // 2) // 1000] and graph.created_at[-1] == 0
    assert graph.reference_time == (T0 + 11 * H) // 1000  # latest data time; the label time (20 h) is ignored
    assert account_feature(graph, "age_days_log")["a4"] == pytest.approx(np.log1p(1 / 24), rel=1e-6)


def test_degrees_and_activity():
    graph = build()
    assert account_feature(graph, "deg_used_device_log") == logged(a0=2, a1=1, a2=1, a3=1, a4=1, s=0)
    assert account_feature(graph, "deg_referred_out_log") == logged(a0=1, a1=1, a2=0, a3=1, a4=2, s=0)
    assert account_feature(graph, "deg_referred_in_log") == logged(a0=0, a1=1, a2=1, a3=1, a4=1, s=1)
    assert account_feature(graph, "deg_transferred_to_in_log") == logged(a0=2, a1=2, a2=0, a3=0, a4=0, s=0)
    assert account_feature(graph, "logins_log")["a0"] == logged(x=4 + 2)["x"]  # 5 uses, one of them the signup
    assert account_feature(graph, "counterparties_log") == logged(a0=2, a1=1, a2=1, a3=0, a4=0, s=0)
    assert account_feature(graph, "wallets_log")["a0"] == logged(x=1)["x"]  # one wallet, two assets
    # Medians per event: BTC 0.5, USDT 200 → a0 sends 1.0/0.5 + 100/200 = 2.5 and receives 0.5/0.5 + 300/200.
    assert account_feature(graph, "transfer_out_volume_log")["a0"] == logged(x=2.5)["x"]
    assert account_feature(graph, "transfer_in_volume_log")["a0"] == logged(x=2.5)["x"]
    assert account_feature(graph, "country_freq") == pytest.approx(
        {"a0": 2 / 6, "a1": 2 / 6, "a2": 2 / 6, "a3": 2 / 6, "a4": 1 / 6, "s": 0.0}
    )
    assert account_feature(graph, "active_span_days_log")["a0"] == logged(x=9 / 24)["x"]  # 0 h → 9 h


def test_shared_identifier_counts_with_and_without_the_cap():
    # d0 is used by a0, a1, a2 (2 others each); d2 by a0 and a4; d1 by a3 alone.
    graph = build()
    assert account_feature(graph, "shared_device_max_log") == logged(a0=2, a1=2, a2=2, a3=0, a4=1, s=0)
    assert account_feature(graph, "shared_device_mean_log") == logged(a0=1.5, a1=2, a2=2, a3=0, a4=1, s=0)
    capped = build(shared_cap=2)  # d0 (3 accounts) becomes a super-node
    assert account_feature(capped, "shared_device_max_capped_log") == logged(a0=1, a1=0, a2=0, a3=0, a4=1, s=0)
    assert account_feature(capped, "shared_device_supernodes_log") == logged(a0=1, a1=1, a2=1, a3=0, a4=0, s=0)
    assert account_feature(capped, "shared_device_max_log") == account_feature(graph, "shared_device_max_log")
    assert account_feature(graph, "shared_ip_max_log") == logged(a0=1, a1=0, a2=0, a3=0, a4=1, s=0)


def test_referral_depth_on_a_chain_and_a_cycle():
    graph = build()
    assert account_feature(graph, "referral_depth_log") == logged(a0=0, a1=1, a2=2, a3=1, a4=1, s=2)
    # parent pointers: 0←1←2←3, and a 3-cycle 4→5→6→4 with 7 below 6
    parent = np.array([-1, 0, 1, 2, 6, 4, 5, 6])
    assert referral_depth(parent).tolist() == [0, 1, 2, 3, 2, 2, 2, 3]


def test_signup_bursts_overall_and_per_prefix():
    graph = build()
    # ±1 h inclusive: a0, a1, a2 lie within 1 h of each other; a3 (2.5 h) is 1.5 h from a2; stubs have no time.
    assert account_feature(graph, "signup_burst_1h_log") == logged(a0=2, a1=2, a2=2, a3=0, a4=0, s=0)
    # Same /24: a0, a1, a3, a4 share 10.0.0.0/24, but only a0 and a1 are within the hour of each other.
    assert account_feature(graph, "signup_burst_1h_prefix_log") == logged(a0=1, a1=1, a2=0, a3=0, a4=0, s=0)
    times = np.array([0, 10, 20, 100])
    assert window_counts(times, 10).tolist() == [1, 2, 1, 0]
    assert window_counts(times, 10, np.array([0, 1, 1, 1])).tolist() == [0, 1, 1, 0]


def test_identifier_features():
    graph = build()
    assert node_feature(graph, "Device", "accounts_log") == logged(d0=3, d1=1, d2=2)
    assert node_feature(graph, "Device", "countries_log") == logged(d0=2, d1=1, d2=2)
    assert node_feature(graph, "Device", "signups_log") == logged(d0=3, d1=1, d2=1)
    assert node_feature(graph, "Wallet", "degree_log") == logged(w0=2)
    assert node_feature(graph, "Wallet", "accounts_log") == logged(w0=1)
    assert node_feature(graph, "Wallet", "assets_log") == logged(w0=2)
    assert node_feature(graph, "Wallet", "active_span_days_log") == logged(w0=1 / 24)
    assert node_feature(graph, "IP", "ipv6") == {"10.0.0.1": 0, "10.0.0.2": 0, "10.0.0.3": 0, "192.168.1.1": 0}
    assert graph.data["Card"].x.shape == (0, len(graph.feature_names["Card"]))


def test_features_of_some_identifier_types_only():
    """Online scoring asks only for the identifier types the feature store lacks: the same values, the rest left
    out."""
    tables = tables_from_graph_rows(rows())
    indexed = index_graph(tables.nodes, tables.rels)
    everything = gnn.features.compute_features(indexed.nodes, indexed.rels, (T0 + 11 * H) // 1000)
    some = gnn.features.compute_features(
        indexed.nodes, indexed.rels, (T0 + 11 * H) // 1000, identifiers=["Device", "Wallet"]
    )
    assert set(some) == {"Account", "Device", "Wallet"}
    for label, features in some.items():
        assert features.names == everything[label].names
        assert np.array_equal(features.values, everything[label].values), label


def test_labels_never_change_features():
    base = build()
    relabelled = rows()
    relabelled["Account.label"] = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a4", "s"],
            "known_label": ["bot_farm", "promo_abuse", "collusion", "benign"],
            "known_label_source": "x",
            "known_label_at": T0 + 900 * H,
        }
    )
    other = build(relabelled)
    assert other.labels.tolist() != base.labels.tolist() and other.content_hash != base.content_hash
    assert other.reference_time == base.reference_time
    for label in base.data.node_types:
        assert np.array_equal(base.data[label].x.numpy(), other.data[label].x.numpy()), label


def test_features_are_finite_float32_and_deterministic():
    graph = build()
    for label in graph.data.node_types:
        x = graph.data[label].x.numpy()
        assert x.dtype == np.float32 and np.isfinite(x).all() and x.shape[1] == len(graph.feature_names[label])
    shuffled = {k: v.sample(frac=1.0, random_state=3) for k, v in rows().items()}
    again = build(shuffled)
    assert again.content_hash == graph.content_hash
    for label in graph.data.node_types:
        assert np.array_equal(graph.data[label].x.numpy(), again.data[label].x.numpy())
    for edge_type in graph.data.edge_types:
        assert np.array_equal(graph.data[edge_type].edge_index.numpy(), again.data[edge_type].edge_index.numpy())


def test_a_graph_of_stubs_only_still_has_every_type():
    graph = build({"Account.stub": pd.DataFrame({"account_id": ["x", "y"], "stub": [True, True]})})
    assert graph.reference_time == 0 and graph.num_accounts == 2
    assert len(graph.data.node_types) == 8 and len(graph.data.edge_types) == 18
    assert all(np.isfinite(graph.data[t].x.numpy()).all() for t in graph.data.node_types)


def test_every_feature_is_documented_in_the_module_docstring():
    doc = gnn.features.__doc__ or ""
    graph = build()
    kinds = "|".join(kind for kind, _ in gnn.features.SHARED_KINDS)
    for label, names in graph.feature_names.items():
        for name in names:
            pattern = re.sub(rf"^shared_({kinds})_", "shared_<k>_", name)
            pattern = re.sub(r"^deg_[a-z_]+?(_out|_in)?_log$", r"deg_<type>\1_log", pattern)
            pattern = re.sub(r"^small_group_(device|ip|card|wallet)_log$", "small_group_<k>_log", pattern)
            assert f"``{pattern}``" in doc, f"{label}.{name} is not documented"


def test_snapshot_round_trip_without_neo4j(tmp_path):
    tables = tables_from_graph_rows(rows())
    graph = build_risk_graph(*tables)
    write_snapshot(tables, tmp_path / "snap", graph=graph)
    back = read_snapshot(tmp_path / "snap")
    assert back.content_hash == graph.content_hash and back.feature_names == graph.feature_names
    assert all(np.array_equal(back.data[t].x.numpy(), graph.data[t].x.numpy()) for t in graph.data.node_types)


def test_inconsistent_tables_are_refused():
    dangling = rows()
    dangling["USED_DEVICE"] = pd.concat([dangling["USED_DEVICE"], dangling["USED_DEVICE"].iloc[:1].assign(dst="nope")])
    with pytest.raises(ValueError, match="USED_DEVICE.dst names 1 nodes that are not in the graph, e.g. 'nope'"):
        build(dangling)
    twice = rows()
    twice["REFERRED"] = pd.concat([twice["REFERRED"], twice["REFERRED"].iloc[:1]])
    nodes, rels = tables_from_graph_rows({k: v for k, v in twice.items() if k != "REFERRED"})
    rels["REFERRED"] = twice["REFERRED"]
    with pytest.raises(ValueError, match=r"REFERRED holds \['a0', 'a1'\] twice"):
        build_risk_graph(nodes, rels)
