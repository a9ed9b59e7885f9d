"""The in-memory graph that training, evaluation and scoring share: the contract between the data side
(export from Neo4j, snapshots, features) and the model side (sampling, models, training).

A :class:`RiskGraph` holds a PyG ``HeteroData`` whose node types are the schema's labels (``Account``,
``Device``, ``IP``, ``Card``, ``Email``, ``Phone``, ``Wallet``, ``Promo``) and whose edge types are the
schema's relationship types plus a reverse edge type for each (``rev_USED_DEVICE`` …), so messages flow
both ways. Node features are *raw* (not normalised): normalisation is fitted on training accounts only,
by the model side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch_geometric.data import HeteroData

from graph.schema import BENIGN, THREATS

#: Label codes in :attr:`RiskGraph.labels`.
UNLABELLED = -1
LABEL_CODES = {BENIGN: 0, **{threat: i + 1 for i, threat in enumerate(THREATS)}}
#: Account properties kept on :attr:`RiskGraph.attributes` (the groups of the bias test, :mod:`gnn.bias`).
GROUP_ATTRIBUTES = ("country", "kyc_level", "email_domain")


@dataclass
class RiskGraph:
    """A graph ready for the model side.

    Attributes:
        data: ``data[node_type].x`` float32 raw features ``[num_nodes, num_features]`` for every node type;
            ``data[edge_type].edge_index`` int64 ``[2, num_edges]`` for every edge type (forward and
            ``rev_`` reverse); ``data[edge_type].edge_attr`` optional float32.
        ids: node type → business keys in index order (``ids["Account"][i]`` is the account_id of node i).
        feature_names: node type → names of the columns of ``x``.
        labels: int8 per account: :data:`UNLABELLED`, or a code of :data:`LABEL_CODES` (known labels from
            the graph, i.e. partial truth).
        created_at: int64 seconds since the epoch per account (0 for stub accounts without one): the time
            split uses it.
        reference_time: the time features were computed at (seconds since the epoch).
        content_hash: hash of the exported content (the snapshot's identity, logged with every model).
        attributes: per account (index order), the attributes the bias test groups by
            (:data:`GROUP_ATTRIBUTES`: ``country``, ``kyc_level``, ``email_domain``); None when not kept.
    """

    data: HeteroData
    ids: dict[str, np.ndarray]
    feature_names: dict[str, list[str]]
    labels: np.ndarray
    created_at: np.ndarray
    reference_time: int
    content_hash: str
    meta: dict[str, object] = field(default_factory=dict)
    attributes: pd.DataFrame | None = None

    @property
    def num_accounts(self) -> int:
        return int(len(self.ids["Account"]))

    def account_index(self, account_ids: pd.Series | list[str]) -> np.ndarray:
        """Positions of the given account ids (-1 for ids not in the graph)."""
        index = pd.Index(self.ids["Account"])
        return index.get_indexer(pd.Index(account_ids))

    def threat_targets(self) -> np.ndarray:
        """``[num_accounts, len(THREATS)]`` float32: 1 where the known label is that threat, else 0."""
        targets = np.zeros((self.num_accounts, len(THREATS)), dtype=np.float32)
        for i in range(len(THREATS)):
            targets[self.labels == i + 1, i] = 1.0
        return targets
