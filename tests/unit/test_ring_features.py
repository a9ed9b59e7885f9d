"""Small-group structure features on a hand-built graph where every value can be counted by hand."""

import numpy as np

from gnn.ring_features import FEATURE_NAMES, ring_structure_features


def col(out, name):
    return out[:, FEATURE_NAMES.index(name)]


def test_ring_versus_household_versus_nat():
    # Accounts 0-3: a ring sharing wallet 0 and device 0, trading in a cycle 0→1→2→0 and 2↔3.
    # Accounts 4-5: a household sharing device 1, no transfers.
    # Accounts 0-5 and 6-39 all use NAT IP 0 (40 accounts: above the small-group cap of 30).
    edges = {
        "WITHDREW_TO": np.array([[0, 1, 2, 3], [0, 0, 0, 0]]),
        "USED_DEVICE": np.array([[0, 1, 4, 5], [0, 0, 1, 1]]),
        "USED_IP": np.array([list(range(40)), [0] * 40]),
        "TRANSFERRED_TO": np.array([[0, 1, 2, 2, 3], [1, 2, 0, 3, 2]]),
    }
    counts = {"Wallet": 1, "Device": 2, "IP": 1, "Account": 40}
    out = ring_structure_features(edges, counts, 40)
    np.testing.assert_allclose(col(out, "small_group_wallet_log")[:4], np.log1p(3))
    np.testing.assert_allclose(col(out, "small_group_device_log")[[0, 1, 4, 5]], np.log1p(1))
    assert (col(out, "small_group_ip_log") == 0).all(), "the NAT IP is too big to be a small group"
    assert col(out, "small_group_kinds").tolist()[:6] == [2, 2, 1, 1, 1, 1]
    np.testing.assert_allclose(col(out, "group_peers_log")[:6], np.log1p([3, 3, 3, 3, 1, 1]))
    np.testing.assert_allclose(col(out, "group_peers_multi_log")[:2], np.log1p(1))  # 0 and 1 share two
    np.testing.assert_allclose(col(out, "transfer_triangles_log")[:4], np.log1p([1, 1, 1, 0]))
    np.testing.assert_allclose(col(out, "reciprocal_counterparties_log")[:4], np.log1p([0, 0, 1, 1]))
    np.testing.assert_allclose(col(out, "peer_counterparty_share")[:4], [1, 1, 1, 1])
    assert (out[6:] == 0).all(), "NAT-only accounts have no small-group structure"
