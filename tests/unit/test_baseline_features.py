"""The baseline's input rows (:func:`gnn.baseline.graph_neighbourhood_features`) on a graph small enough to
write every expected value by hand."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from gnn.baseline import graph_neighbourhood_features


def _graph() -> HeteroData:
    """Accounts a0..a3, devices d0 (a0, a1), d1 (a2), d2 (everyone: a super-node at cap 3), card c0 (a1, a3,
    twice for a3), a transfer a0 → a2."""
    data = HeteroData()
    data["Account"].x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [8.0, 80.0]])
    data["Device"].x = torch.tensor([[0.5], [1.5], [2.5]])
    data["Card"].x = torch.tensor([[3.0]])
    data["Account", "USED_DEVICE", "Device"].edge_index = torch.tensor([[0, 1, 2, 0, 1, 2, 3], [0, 0, 1, 2, 2, 2, 2]])
    data["Device", "rev_USED_DEVICE", "Account"].edge_index = torch.tensor([[0, 0, 1], [0, 1, 2]])
    data["Account", "USED_CARD", "Card"].edge_index = torch.tensor([[1, 3, 3], [0, 0, 0]])
    data["Account", "TRANSFERRED_TO", "Account"].edge_index = torch.tensor([[0], [2]])
    return data


def test_rows_hold_own_one_hop_and_two_hop_means_without_super_nodes() -> None:
    rows, names = graph_neighbourhood_features(_graph(), "Account", supernode_cap=3)
    x = _graph()["Account"].x.numpy()
    assert names[:2] == ["own.x0", "own.x1"] and names[-1] == "hop2.accounts" and rows.dtype == np.float32
    assert rows.shape == (4, 2 + 1 + 1 + 2 + 2 + 1)
    np.testing.assert_array_equal(rows[:, :2], x)
    np.testing.assert_allclose(rows[:, 2], [1.5, 1.5, 2.0, 2.5])  # device mean (d2 counted: 1 hop has no cap)
    np.testing.assert_allclose(rows[:, 3], [0.0, 3.0, 0.0, 3.0])  # card mean; a3's two uses count once
    np.testing.assert_allclose(rows[:, 4:6], [[4.0, 40.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # transfers out
    # Two hops: d0 ties a0-a1, c0 ties a1-a3, the transfer ties a0-a2 both ways; d2 (4 users > cap 3) ties nobody.
    expected = np.array([(x[1] + x[2]) / 2, (x[0] + x[3]) / 2, x[0], x[1]])
    np.testing.assert_allclose(rows[:, 6:8], expected, rtol=1e-6)
    np.testing.assert_array_equal(rows[:, 8], [2, 2, 1, 1])
