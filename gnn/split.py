"""Splitting accounts by creation time: train on older accounts, validate and test on newer ones."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gnn.graph_data import UNLABELLED, RiskGraph


@dataclass(frozen=True)
class TimeSplit:
    """Boundaries in seconds since the epoch: train < ``train_end`` <= val < ``val_end`` <= test.

    Recorded with every model, so an evaluation can tell which accounts the model trained on.
    """

    train_end: int
    val_end: int
    train_share: float
    val_share: float

    @classmethod
    def by_quantiles(cls, graph: RiskGraph, train_share: float = 0.7, val_share: float = 0.15) -> TimeSplit:
        """Boundaries at the creation-time quantiles of the real (non-stub) accounts."""
        if not 0 < train_share < 1 or not 0 < val_share < 1 or train_share + val_share >= 1:
            raise ValueError(f"need 0 < train_share, val_share and a sum < 1; got {train_share}, {val_share}")
        created = graph.created_at[graph.created_at > 0]
        if len(created) == 0:
            raise ValueError("no account has a creation time; cannot split by time")
        t1, t2 = np.quantile(created, [train_share, train_share + val_share])
        return cls(int(t1), int(t2), train_share, val_share)

    def masks(self, graph: RiskGraph) -> dict[str, np.ndarray]:
        """Boolean masks over accounts for ``train``, ``val`` and ``test`` (stubs, without a time, are in none)."""
        c = graph.created_at
        real = c > 0
        return {
            "train": real & (c < self.train_end),
            "val": real & (c >= self.train_end) & (c < self.val_end),
            "test": real & (c >= self.val_end),
        }

    def labelled_masks(self, graph: RiskGraph) -> dict[str, np.ndarray]:
        """The same masks restricted to accounts with a known label."""
        known = graph.labels != UNLABELLED
        return {k: m & known for k, m in self.masks(graph).items()}

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)
