"""``GraphRiskModel``: the project's estimator on any graph (scikit-learn / PyGOD conventions).

Give it a PyG ``Data`` or ``HeteroData`` with node features, the node type to score, one or more label columns
(``-1``: unlabelled) and train / validation masks; it trains the same hetero GraphSAGE as the exchange
(:func:`gnn.train.train_gnn`), the same graph-aggregated gradient-boosting baseline
(:func:`gnn.baseline.graph_neighbourhood_features`) and ships per label column the better of them or their
average on validation (:class:`gnn.source_choice.SourceChoice`) — the exchange's
:class:`~gnn.estimator.RiskModel` is built from the same pieces.

Swapping the model: ``GraphRiskModel(gnn_factory=f)`` trains ``f(data, num_outputs, target_type)`` instead of the
GraphSAGE — any ``torch.nn.Module`` called as ``module(x_dict, edge_index_dict)`` that returns
``[N_target, num_outputs]`` logits (for example :class:`gnn.research.variants.HeteroGAT`).

Example::

    model = GraphRiskModel(TrainConfig(epochs=100, sampling="full"))
    model.fit(data, target_type="account")          # y, train_mask, val_mask read from data["account"]
    scores = model.decision_function(data)          # [N_account, n_labels] probabilities
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.data import Data, HeteroData

from gnn.baseline import graph_neighbourhood_features
from gnn.normalize import FeatureScaler
from gnn.source_choice import SourceChoice, train_sources
from gnn.train import (
    EpochResult,
    TrainConfig,
    TrainingData,
    TrainResult,
    predict_logits,
    standardised_data,
    train_gnn,
)
from graph.errors import ModelError

#: The node type a homogeneous ``Data`` becomes, and its edge type (a ``rev_`` type carries messages back).
NODE = "node"
EDGE = (NODE, "links", NODE)

#: ``factory(standardised_data, num_outputs, target_type)`` → an untrained module (see the module docstring).
GnnFactory = Callable[[HeteroData, int, str], torch.nn.Module]


def as_hetero(data: Data | HeteroData) -> HeteroData:
    """``data`` as a ``HeteroData`` with a reverse edge type for every edge type that has none.

    A homogeneous ``Data`` becomes node type :data:`NODE` with edge type :data:`EDGE`; its node-level
    attributes (``x``, ``y``, masks) move to that node type.
    """
    if isinstance(data, Data) and not isinstance(data, HeteroData):
        out = HeteroData()
        for key, value in data.to_dict().items():
            if key == "edge_index":
                out[EDGE].edge_index = value
            elif torch.is_tensor(value) and value.dim() >= 1 and value.size(0) == data.num_nodes:
                out[NODE][key] = value
        data = out
    out = data.clone()
    for src, rel, dst in list(out.edge_types):
        reverse = (dst, rel[4:] if rel.startswith("rev_") else f"rev_{rel}", src)
        if reverse not in out.edge_types:
            out[reverse].edge_index = out[(src, rel, dst)].edge_index.flip(0)
    return out


def _indices(mask: np.ndarray | torch.Tensor, n: int, name: str) -> np.ndarray:
    m = np.asarray(mask.cpu() if torch.is_tensor(mask) else mask)
    if m.dtype == bool:
        if m.shape != (n,):
            raise ValueError(f"{name} must be a boolean mask of shape ({n},), got {m.shape}")
        return np.flatnonzero(m)
    return m.astype(np.int64)


def prepare_graph(
    data: HeteroData,
    target_type: str,
    labels: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    target_names: tuple[str, ...],
) -> TrainingData:
    """The :class:`~gnn.train.TrainingData` of any graph: features standardised on the training nodes.

    Args:
        data: the graph (``HeteroData``, reverse edge types included: :func:`as_hetero`).
        target_type: the node type scored.
        labels: ``[N_target, n_labels]`` int, 1 positive, 0 negative, -1 unlabelled.
        train: training node indices (unlabelled ones are drawn as negatives, as on the exchange).
        val: validation node indices (early stopping, calibration and the per-target choice).
        target_names: one name per label column.
    """
    known = np.asarray((labels >= 0).any(axis=1), dtype=bool)
    scaler = FeatureScaler.fit_data(data, target_type, train)
    return TrainingData(
        data=standardised_data(data, scaler),
        targets=torch.from_numpy((labels == 1).astype(np.float32)),
        train_labelled=train[known[train]],
        train_unlabelled=train[~known[train]],
        val=val,
        scaler=scaler,
        target_type=target_type,
        target_names=target_names,
    )


class GraphRiskModel(SourceChoice):
    """GraphSAGE, boosted baseline and their per-label choice on any graph.

    Args:
        config: GNN hyper-parameters (``sampling="full"`` suits graphs up to a few hundred thousand nodes).
        use_baseline: also train the graph-aggregated boosted baseline (needed for the per-label choice).
        gnn_factory: builds the module to train instead of the GraphSAGE (module docstring).
    """

    def __init__(
        self, config: TrainConfig | None = None, use_baseline: bool = True, gnn_factory: GnnFactory | None = None
    ) -> None:
        super().__init__(())
        self.config = config or TrainConfig(sampling="full")
        self.use_baseline = use_baseline
        self.gnn_factory = gnn_factory
        self.target_type = ""
        self.scaler: FeatureScaler | None = None
        self.gnn: torch.nn.Module | None = None
        self.result: TrainResult | None = None

    def fit(
        self,
        data: Data | HeteroData,
        target_type: str | None = None,
        y: np.ndarray | torch.Tensor | None = None,
        train_mask: np.ndarray | torch.Tensor | None = None,
        val_mask: np.ndarray | torch.Tensor | None = None,
        target_names: tuple[str, ...] | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None,
    ) -> GraphRiskModel:
        """Train on the labelled training nodes, early-stop, calibrate and choose per label on validation.

        Args:
            data: the graph; a homogeneous ``Data`` is scored as node type :data:`NODE`.
            target_type: the node type to score (default: the only one, or :data:`NODE`).
            y: ``[N_target]`` or ``[N_target, n_labels]`` labels, 1 / 0 / -1 unlabelled (default
                ``data[target_type].y``).
            train_mask, val_mask: boolean masks or index arrays over the target nodes (default the
                ``train_mask`` / ``val_mask`` of ``data[target_type]``).
            target_names: one name per label column (default ``label``, ``label1``, …).
            on_epoch: called with each GNN epoch's result.

        Raises:
            ValueError: a missing or misshapen label or mask, or no labelled training node.
        """
        hetero = as_hetero(data)
        self.target_type = target_type or (hetero.node_types[0] if len(hetero.node_types) == 1 else NODE)
        if self.target_type not in hetero.node_types:
            raise ValueError(f"target_type {self.target_type!r} is not a node type of the graph: {hetero.node_types}")
        store = hetero[self.target_type]
        n = store.num_nodes
        labels = self._labels(y if y is not None else store.get("y"), n)
        train = _indices(train_mask if train_mask is not None else self._mask(store, "train_mask"), n, "train_mask")
        val = _indices(val_mask if val_mask is not None else self._mask(store, "val_mask"), n, "val_mask")
        if not (labels[train] >= 0).any():
            raise ValueError("no labelled node in train_mask")
        names = target_names or tuple("label" if i == 0 else f"label{i}" for i in range(labels.shape[1]))
        if len(names) != labels.shape[1]:
            raise ValueError(f"target_names has {len(names)} names for {labels.shape[1]} label columns")
        self.target_names = tuple(names)
        td = prepare_graph(hetero, self.target_type, labels, train, val, self.target_names)
        self.scaler = td.scaler
        module = self._new_gnn(td)
        self.result = train_gnn(td, self.config, on_epoch, module)
        cap = self.config.supernode_cap
        features = graph_neighbourhood_features(hetero, self.target_type, cap)[0] if self.use_baseline else None
        sources = train_sources(td, features, self.config, self.result.state_dict, self._new_gnn(td))
        self.gnn, self.baseline = sources.gnn, sources.baseline
        self._calibrate_and_choose(sources.raw, td.targets.numpy(), td.val, td.train_labelled)
        return self

    def _new_gnn(self, td: TrainingData) -> torch.nn.Module | None:
        if self.gnn_factory is None:
            return None
        torch.manual_seed(self.config.seed)
        return self.gnn_factory(td.data, len(td.target_names), td.target_type)

    @staticmethod
    def _labels(y: np.ndarray | torch.Tensor | None, n: int) -> np.ndarray:
        if y is None:
            raise ValueError("no labels: pass y or set data[target_type].y")
        labels = np.asarray(y.cpu() if torch.is_tensor(y) else y).astype(np.int64)
        labels = labels.reshape(n, -1) if labels.ndim == 1 else labels
        if labels.shape[0] != n:
            raise ValueError(f"y must have {n} rows (one per target node), got {labels.shape[0]}")
        return labels

    @staticmethod
    def _mask(store, key: str) -> torch.Tensor:
        if key not in store:
            raise ValueError(f"no {key}: pass it or set data[target_type].{key}")
        return store[key]

    def raw_scores(self, data: Data | HeteroData) -> dict[str, np.ndarray]:
        """Uncalibrated scores per source (GNN logits, baseline margins), ``[N_target, n_labels]``."""
        if self.gnn is None or self.scaler is None:
            raise ModelError("the model is not trained: call fit()")
        hetero = as_hetero(data)
        raw = {"gnn": predict_logits(self.gnn, standardised_data(hetero, self.scaler), torch.device("cpu"))}
        if self.baseline is not None:
            features = graph_neighbourhood_features(hetero, self.target_type, self.config.supernode_cap)[0]
            raw["baseline"] = self.baseline.decision_function(features)
        return raw

    def decision_function(self, data: Data | HeteroData) -> np.ndarray:
        """Probability per target node and label column, ``[N_target, n_labels]``, from the shipped source."""
        return self.calibrate(self.raw_scores(data))

    def source_scores(self, data: Data | HeteroData) -> dict[str, np.ndarray]:
        """Each source's calibrated probabilities (``gnn``, ``baseline``, ``ensemble``) and ``shipped``."""
        return self.source_probs(self.raw_scores(data))

    def predict(self, data: Data | HeteroData, threshold: float = 0.5) -> np.ndarray:
        """``[N_target, n_labels]`` booleans: the probability reaches ``threshold``."""
        return self.decision_function(data) >= threshold
