"""Feature standardisation, fitted on training accounts only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import HeteroData

from gnn.graph_data import RiskGraph
from graph.schema import ACCOUNT


@dataclass
class FeatureScaler:
    """Per node type mean and standard deviation of each raw feature.

    Accounts are fitted on the training accounts only. Identifier nodes (devices, IPs, …) carry no label
    and belong to no split, so they are fitted on all of them.
    """

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def fit(cls, graph: RiskGraph, train_accounts: np.ndarray) -> FeatureScaler:
        """Fitted on the exchange graph's training accounts (and every identifier node)."""
        return cls.fit_data(graph.data, ACCOUNT.label, train_accounts)

    @classmethod
    def fit_data(cls, data: HeteroData, target_type: str, train_nodes: np.ndarray) -> FeatureScaler:
        """Fitted on any graph: the ``train_nodes`` of ``target_type``, every node of the other types."""
        mean, std = {}, {}
        for node_type in data.node_types:
            x = data[node_type].x.numpy()
            if node_type == target_type:
                x = x[train_nodes]
            if len(x) == 0:
                mean[node_type] = np.zeros(data[node_type].x.shape[1], dtype=np.float32)
                std[node_type] = np.ones_like(mean[node_type])
                continue
            mean[node_type] = x.mean(axis=0).astype(np.float32)
            s = x.std(axis=0).astype(np.float32)
            std[node_type] = np.where(s > 1e-6, s, 1.0).astype(np.float32)
        return cls(mean, std)

    def transform(self, graph: RiskGraph) -> dict[str, torch.Tensor]:
        """Standardised features per node type (clipped to ±10 so an outlier cannot dominate)."""
        return self.transform_data(graph.data)

    def transform_data(self, data: HeteroData) -> dict[str, torch.Tensor]:
        """:meth:`transform` of any graph's node features."""
        out = {}
        for node_type in data.node_types:
            x = data[node_type].x
            m = torch.from_numpy(self.mean[node_type])
            s = torch.from_numpy(self.std[node_type])
            out[node_type] = ((x - m) / s).clamp_(-10.0, 10.0)
        return out

    def state(self) -> dict[str, dict[str, list[float]]]:
        return {t: {"mean": self.mean[t].tolist(), "std": self.std[t].tolist()} for t in self.mean}

    @classmethod
    def from_state(cls, state: dict[str, dict[str, list[float]]]) -> FeatureScaler:
        return cls(
            {t: np.asarray(v["mean"], dtype=np.float32) for t, v in state.items()},
            {t: np.asarray(v["std"], dtype=np.float32) for t, v in state.items()},
        )
