"""Known-fraud ties (gnn.known_ties) on a tiny hand-made graph, and their place in a trained model's scores."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from gnn.graph_data import LABEL_CODES, UNLABELLED, RiskGraph
from gnn.known_ties import known_fraud_ties
from graph import schema as s
from graph.supernodes import KNOWN_TIES_CAP


def _graph() -> RiskGraph:
    """12 accounts: device d0 of a0, a1, a2 and card c0 of a0, a1; an IP all 12 use (over the cap); a3 pays a4;
    a5 referred a6. Known labels: a1, a2 collusion, a4 promotion abuse, a6 benign."""
    n = 12
    assert n > KNOWN_TIES_CAP
    data = HeteroData()
    counts = {"Account": n, "Device": 1, "IP": 1, "Card": 1, "Email": 0, "Phone": 0, "Wallet": 0, "Promo": 0}
    for label, k in counts.items():
        data[label].x = torch.zeros((k, 1))
        data[label].num_nodes = k
    edges = {
        s.USED_DEVICE: [[0, 1, 2], [0, 0, 0]],
        s.USED_CARD: [[0, 1], [0, 0]],
        s.USED_IP: [list(range(n)), [0] * n],
        s.TRANSFERRED_TO: [[3], [4]],
        s.REFERRED: [[5], [6]],
    }
    for rel in s.DOMAIN_RELS:
        data[rel.edge_type].edge_index = torch.tensor(edges.get(rel, [[], []]), dtype=torch.long)
    ids = {label: np.array([f"{label[0].lower()}{i}" for i in range(k)], dtype=object) for label, k in counts.items()}
    labels = np.full(n, UNLABELLED, dtype=np.int8)
    labels[[1, 2]] = LABEL_CODES[s.COLLUSION]
    labels[4] = LABEL_CODES[s.PROMO_ABUSE]
    labels[6] = LABEL_CODES[s.BENIGN]
    return RiskGraph(data, ids, {k: ["f"] for k in counts}, labels, np.ones(n, dtype=np.int64), 0, "h")


def test_an_account_counts_the_known_fraud_accounts_it_is_tied_to_per_threat():
    ties = known_fraud_ties(_graph())
    col, promo, bot = (s.THREATS.index(t) for t in (s.COLLUSION, s.PROMO_ABUSE, s.BOT_FARM))
    assert ties[0, col] == 2  # a1 and a2, each counted once though a1 shares the device and the card
    assert ties[1, col] == 1 and ties[2, col] == 1  # never itself
    assert ties[3, promo] == 1 and ties[4, promo] == 0  # the transfer ties both ways; a4's own label is not counted
    assert ties[5].sum() == 0  # referred a benign account
    assert ties[7:].sum() == 0  # only the IP every account uses: a super-node ties nobody
    assert ties[:, bot].sum() == 0


def test_the_ties_of_some_accounts_are_their_rows_of_everyones():
    g = _graph()
    rows = np.array([3, 0, 11, 1])
    assert np.array_equal(known_fraud_ties(g, rows=rows), known_fraud_ties(g)[rows])
