"""The training loop of the GNN, shared by plain PyTorch runs and Ray Train workers.

Labels are partial (as in real life): a training account known to be of a threat is a positive for that
head; a known benign account, or one of another threat, is a negative; an *unlabelled* account is a
negative too (most are benign), but only a random share of them (``unlabelled_sample``) is drawn each
epoch, so the few known positives are not drowned. Class imbalance is further handled by a per-threat
``pos_weight`` (negatives / positives among the drawn accounts, capped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from gnn.graph_data import UNLABELLED, RiskGraph
from gnn.metrics import threat_metrics
from gnn.model import RiskSAGE
from gnn.normalize import FeatureScaler
from gnn.runtime import default_threads, torch_threads
from gnn.split import TimeSplit
from graph.logs import logger
from graph.schema import ACCOUNT, THREATS
from graph.supernodes import MODEL_SUPERNODE_CAP

log = logger(__name__)


@dataclass
class TrainConfig:
    """Hyper-parameters and run settings (all recorded with the model)."""

    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.2
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 30
    patience: int = 6
    batch_size: int = 1024
    fanout: tuple[int, ...] = (15, 10)
    sampling: str = "neighbor"  # "neighbor" (mini-batches from the neighbour sampler) or "full"
    unlabelled_sample: float = 0.25
    pos_weight_cap: float = 100.0
    supernode_cap: int | None = MODEL_SUPERNODE_CAP
    seed: int = 0
    device: str | None = None  # None: CUDA when available, else CPU
    threads: int | None = None  # torch CPU threads; None: gnn.runtime.default_threads()

    def __post_init__(self) -> None:
        if self.sampling not in ("neighbor", "full"):
            raise ValueError(f"sampling must be 'neighbor' or 'full', got {self.sampling!r}")
        if not 0 < self.unlabelled_sample <= 1:
            raise ValueError(f"unlabelled_sample must be in (0, 1], got {self.unlabelled_sample}")
        self.fanout = tuple(int(f) for f in self.fanout)

    def resolved_threads(self) -> int:
        """Torch CPU threads of a run in this process: ``threads``, else :func:`gnn.runtime.default_threads`."""
        return self.threads or default_threads()

    def resolved_device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingData:
    """Tensors prepared once per run: standardised features, edges, targets and the split's accounts."""

    data: HeteroData
    targets: Tensor  # [N_account, n_threats]
    train_labelled: np.ndarray
    train_unlabelled: np.ndarray
    val: np.ndarray  # every real account created in the validation period
    scaler: FeatureScaler
    target_type: str = ACCOUNT.label  # the node type scored (any graph: see gnn.graph_model)
    target_names: tuple[str, ...] = THREATS  # one output per name (the exchange: its threats)


@dataclass
class EpochResult:
    epoch: int
    loss: float
    val_auprc: dict[str, float]
    val_auprc_mean: float
    seconds: float = 0.0


@dataclass
class EarlyStopping:
    """The best epoch so far by mean validation AUPRC, its weights, and when to stop: after ``patience`` epochs
    without improvement. One instance per run (plain or Ray); a Ray checkpoint saves and restores it whole."""

    patience: int
    best: float = -1.0
    best_epoch: int = 0
    stale: int = 0
    best_state: dict[str, Tensor] | None = None

    def update(self, result: EpochResult, model: torch.nn.Module) -> None:
        """Record an epoch's result; keep a CPU copy of ``model``'s weights when it is the best so far.

        A validation score that cannot be measured (NaN: no labelled positive in the validation period) never
        improves, but the first epoch's weights are kept all the same, so a run always returns weights.
        """
        improved = result.val_auprc_mean > self.best
        if improved or self.best_state is None:
            self.best_epoch = result.epoch
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if improved:
            self.best, self.stale = result.val_auprc_mean, 0
        else:
            self.stale += 1

    @property
    def should_stop(self) -> bool:
        """No improvement for ``patience`` epochs."""
        return self.stale >= self.patience


@dataclass
class TrainResult:
    state_dict: dict[str, Tensor]
    best_epoch: int
    history: list[EpochResult] = field(default_factory=list)


def prepare_training(graph: RiskGraph, split: TimeSplit) -> TrainingData:
    """Standardise features (fitted on training accounts) and lay out targets and split accounts."""
    masks = split.masks(graph)
    scaler = FeatureScaler.fit(graph, masks["train"])
    data = standardised(graph, scaler)
    known = graph.labels != UNLABELLED
    return TrainingData(
        data=data,
        targets=torch.from_numpy(graph.threat_targets()),
        train_labelled=np.flatnonzero(masks["train"] & known),
        train_unlabelled=np.flatnonzero(masks["train"] & ~known),
        val=np.flatnonzero(masks["val"]),
        scaler=scaler,
    )


def standardised(graph: RiskGraph, scaler: FeatureScaler) -> HeteroData:
    """The graph's edges with its features standardised by ``scaler`` (what the model consumes)."""
    return standardised_data(graph.data, scaler)


def standardised_data(data: HeteroData, scaler: FeatureScaler) -> HeteroData:
    """Any graph's edges with its features standardised by ``scaler``."""
    out = HeteroData()
    for node_type, x in scaler.transform_data(data).items():
        out[node_type].x = x
    for edge_type in data.edge_types:
        out[edge_type].edge_index = data[edge_type].edge_index
    return out


def build_model(
    data: HeteroData, config: TrainConfig, target_type: str = ACCOUNT.label, num_outputs: int = len(THREATS)
) -> RiskSAGE:
    """The hetero GraphSAGE for ``data``'s node and edge types, scoring ``target_type`` nodes."""
    in_channels = {t: int(data[t].x.shape[1]) for t in data.node_types}
    return RiskSAGE(
        data.metadata(), in_channels, config.hidden, config.num_layers, config.dropout, num_outputs, target_type
    )


def epoch_seeds(td: TrainingData, config: TrainConfig, epoch: int) -> np.ndarray:
    """This epoch's training accounts: every labelled one plus a fresh sample of unlabelled ones."""
    rng = np.random.default_rng([config.seed, epoch])
    n = int(round(len(td.train_unlabelled) * config.unlabelled_sample))
    drawn = rng.choice(td.train_unlabelled, size=n, replace=False) if n else td.train_unlabelled[:0]
    seeds = np.concatenate([td.train_labelled, drawn])
    rng.shuffle(seeds)
    return seeds


def pos_weight(targets: Tensor, seeds: np.ndarray, cap: float) -> Tensor:
    t = targets[torch.from_numpy(seeds)]
    pos = t.sum(0)
    return ((len(seeds) - pos) / pos.clamp(min=1)).clamp(max=cap)


def train_epoch(
    model: torch.nn.Module,
    td: TrainingData,
    seeds: np.ndarray,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    epoch: int,
) -> float:
    """One pass over ``seeds`` (this worker's share); returns the mean loss."""
    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight(td.targets, seeds, config.pos_weight_cap).to(device))
    total, count = 0.0, 0
    if config.sampling == "full":
        data = td.data.to(device)
        optimizer.zero_grad()
        logits = model(data.x_dict, data.edge_index_dict)
        idx = torch.from_numpy(seeds).to(device)
        loss = loss_fn(logits[idx], td.targets[torch.from_numpy(seeds)].to(device))
        loss.backward()
        optimizer.step()
        return float(loss.detach())
    from gnn.sampling import make_neighbor_loader

    loader = make_neighbor_loader(
        td.data,
        num_neighbors=list(config.fanout),
        input_nodes=(td.target_type, torch.from_numpy(seeds)),
        batch_size=config.batch_size,
        shuffle=False,
        seed=config.seed * 1000 + epoch,
        supernode_cap=config.supernode_cap,
    )
    for batch in loader:
        batch = batch.to(device)
        n = batch[td.target_type].batch_size
        optimizer.zero_grad()
        logits = model(batch.x_dict, batch.edge_index_dict)[:n]
        target = td.targets[batch[td.target_type].n_id[:n].cpu()].to(device)
        loss = loss_fn(logits, target)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * n
        count += n
    return total / max(count, 1)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: HeteroData, device: torch.device) -> np.ndarray:
    """Full-graph inference: logits ``[N_account, n_threats]`` for every account, layer by layer in bounded
    memory (:meth:`gnn.model.RiskSAGE.inference`)."""
    model.eval()
    d = data.to(device)
    if isinstance(model, RiskSAGE):
        return model.inference(d.x_dict, d.edge_index_dict).cpu().numpy()
    return model(d.x_dict, d.edge_index_dict).cpu().numpy()


def validation_auprc(
    logits: np.ndarray, targets: Tensor, val: np.ndarray, names: tuple[str, ...] = THREATS
) -> dict[str, float]:
    """AUPRC per target (``names``, default the threats) over every validation node (unlabelled ones count as
    negatives)."""
    out = {}
    t = targets.numpy()[val]
    for i, threat in enumerate(names):
        m = threat_metrics(t[:, i], logits[val, i], threshold=0.0)
        out[threat] = m["auprc"]
    return out


def run_epoch(
    model: torch.nn.Module,
    td: TrainingData,
    seeds: np.ndarray,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    epoch: int,
    evaluated: torch.nn.Module | None = None,
) -> EpochResult:
    """Train one epoch on ``seeds``, then measure validation AUPRC over the full graph.

    Args:
        evaluated: the module to validate (the unwrapped model under DDP); default ``model``.
    """
    started = time.perf_counter()
    loss = train_epoch(model, td, seeds, optimizer, config, device, epoch)
    aps = validation_auprc(predict_logits(evaluated or model, td.data, device), td.targets, td.val, td.target_names)
    return EpochResult(epoch, loss, aps, float(np.nanmean(list(aps.values()))), time.perf_counter() - started)


def fit_gnn(
    graph: RiskGraph, split: TimeSplit, config: TrainConfig, on_epoch: Callable[[EpochResult], None] | None = None
) -> tuple[TrainResult, TrainingData]:
    """Plain (single-process) training on the exchange graph: :func:`train_gnn` on its time split."""
    with torch_threads(config.resolved_threads()):
        td = prepare_training(graph, split)
    return train_gnn(td, config, on_epoch), td


def train_gnn(
    td: TrainingData,
    config: TrainConfig,
    on_epoch: Callable[[EpochResult], None] | None = None,
    model: torch.nn.Module | None = None,
) -> TrainResult:
    """Plain (single-process) training on any prepared graph, with early stopping on mean validation AUPRC.

    Args:
        td: the prepared graph, targets and split (:func:`prepare_training`, or
            :func:`gnn.graph_model.prepare_graph` for any graph).
        config: hyper-parameters.
        on_epoch: called with each epoch's result.
        model: the module to train (default :func:`build_model`'s GraphSAGE): any ``torch.nn.Module`` called
            as ``model(x_dict, edge_index_dict)`` that returns ``[N_target, len(td.target_names)]`` logits.
    """
    with torch_threads(config.resolved_threads()):
        torch.manual_seed(config.seed)
        device = config.resolved_device()
        if model is None:
            model = build_model(td.data, config, td.target_type, len(td.target_names))
        model = model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        stopping, history = EarlyStopping(config.patience), []
        for epoch in range(config.epochs):
            result = run_epoch(model, td, epoch_seeds(td, config, epoch), optimizer, config, device, epoch)
            history.append(result)
            log.info("epoch %d: loss %.4f, mean validation AUPRC %.4f", epoch, result.loss, result.val_auprc_mean)
            if on_epoch:
                on_epoch(result)
            stopping.update(result, model)
            if stopping.should_stop:
                break
    return TrainResult(stopping.best_state or model.state_dict(), stopping.best_epoch, history)
