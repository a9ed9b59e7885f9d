"""The training loop of the GNN, shared by plain PyTorch runs and Ray Train workers.

Labels are partial (as in real life): a training account known to be of a threat is a positive for that
head; a known benign account, or one of another threat, is a negative; an *unlabelled* account is a
negative too (most are benign), but only a random share of them (``unlabelled_sample``, at most
``unlabelled_max``) is drawn each epoch, so the few known positives are not drowned. Class imbalance is further
handled by a per-threat ``pos_weight`` (negatives / positives among the drawn accounts, capped).

An epoch's cost therefore grows with the labelled accounts and a bounded sample of unlabelled ones, not with
every account: validation after each epoch scores the sampled neighbourhoods of the validation accounts (the
same sampler and fan-out as training) — every positive one and at most ``val_max`` in all, the rest a fixed
random sample weighted up to stand for the accounts it was drawn from — instead of the whole graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import Tensor
from torch_geometric.data import HeteroData

from gnn.graph_data import UNLABELLED, RiskGraph
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
    unlabelled_max: int | None = 50_000  # at most this many unlabelled accounts per epoch (None: no bound)
    val_max: int | None = 50_000  # validation accounts scored per epoch (None: every one); positives always
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
        if self.unlabelled_max is not None and self.unlabelled_max < 0:
            raise ValueError(f"unlabelled_max must be >= 0 or None, got {self.unlabelled_max}")
        if self.val_max is not None and self.val_max < 1:
            raise ValueError(f"val_max must be >= 1 or None, got {self.val_max}")
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
    val_seconds: float = 0.0  # of ``seconds``, the validation
    cpu_seconds: float = 0.0  # CPU time of the epoch (every thread; under Ray Train, summed over the workers)


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
    """This epoch's training accounts: every labelled one plus a fresh sample of unlabelled ones
    (``unlabelled_sample`` of them, at most ``unlabelled_max``)."""
    rng = np.random.default_rng([config.seed, epoch])
    n = int(round(len(td.train_unlabelled) * config.unlabelled_sample))
    if config.unlabelled_max is not None:
        n = min(n, config.unlabelled_max)
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
    negatives), from full-graph ``logits``."""
    return auprc_by_target(logits[val], targets.numpy()[val], names)


def auprc_by_target(
    scores: np.ndarray, targets: np.ndarray, names: tuple[str, ...], weights: np.ndarray | None = None
) -> dict[str, float]:
    """AUPRC per target column of ``scores`` against ``targets`` (both ``[n, len(names)]``), each node counted
    ``weights`` times (None: once); NaN for a target without a positive or without a negative."""
    out = {}
    for i, name in enumerate(names):
        y = targets[:, i].astype(bool)
        out[name] = (
            float(average_precision_score(y, scores[:, i], sample_weight=weights))
            if y.any() and (~y).any()
            else float("nan")
        )
    return out


def validation_sample(td: TrainingData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The validation nodes scored after each epoch, and their weights.

    Every validation node while there are at most ``val_max`` (weights 1). Otherwise every node positive for
    some target (weight 1) and a fixed random sample of the others filling up to ``val_max``, each weighted
    by how many it stands for, so the weighted AUPRC estimates the full one. The same nodes every epoch, so
    epochs compare.

    Returns:
        ``(nodes, weights)``, nodes sorted.
    """
    val = td.val
    if config.val_max is None or len(val) <= config.val_max:
        return val, np.ones(len(val))
    positive = td.targets.numpy()[val].any(axis=1)
    pos, rest = val[positive], val[~positive]
    k = min(max(config.val_max - len(pos), 1), len(rest))
    drawn = np.random.default_rng([config.seed, len(val)]).choice(rest, size=k, replace=False)
    nodes = np.concatenate([pos, drawn])
    weights = np.concatenate([np.ones(len(pos)), np.full(k, len(rest) / k)])
    order = np.argsort(nodes, kind="stable")
    return nodes[order], weights[order]


@torch.no_grad()
def sampled_logits(
    model: torch.nn.Module, td: TrainingData, nodes: np.ndarray, config: TrainConfig, device: torch.device, seed: int
) -> np.ndarray:
    """Logits of ``nodes`` (of ``td.target_type``) from their sampled neighbourhoods (the training sampler and
    fan-out): memory and time grow with ``len(nodes)``, not with the graph.

    Shapes:
        nodes: ``[n]``; returns ``[n, len(td.target_names)]``, in the order of ``nodes``.
    """
    from gnn.sampling import make_neighbor_loader

    model.eval()
    out = np.empty((len(nodes), len(td.target_names)), dtype=np.float32)
    if len(nodes) == 0:
        return out
    loader = make_neighbor_loader(
        td.data,
        num_neighbors=list(config.fanout),
        input_nodes=(td.target_type, torch.from_numpy(np.asarray(nodes, dtype=np.int64))),
        batch_size=config.batch_size,
        shuffle=False,
        seed=seed,
        supernode_cap=config.supernode_cap,
    )
    at = 0
    for batch in loader:
        batch = batch.to(device)
        n = batch[td.target_type].batch_size
        out[at : at + n] = model(batch.x_dict, batch.edge_index_dict)[:n].float().cpu().numpy()
        at += n
    return out


def validation_logits(
    model: torch.nn.Module,
    td: TrainingData,
    config: TrainConfig,
    device: torch.device,
    validation_share: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Logits of one process's share of :func:`validation_sample`'s nodes from their sampled neighbourhoods:
    the ``rank``-th of ``world`` contiguous slices, so the shares of ranks ``0 … world-1`` concatenated are the
    logits of every validation node in order. One neighbour-sampling seed per rank for every epoch: epochs
    differ by their weights only.

    Shapes:
        returns ``[len(share), len(td.target_names)]``.
    """
    rank, world = validation_share
    nodes, _ = validation_sample(td, config)
    mine = np.array_split(nodes, world)[rank]
    return sampled_logits(model, td, mine, config, device, seed=config.seed * 1000 + 999_999 + rank)


def run_epoch(
    model: torch.nn.Module,
    td: TrainingData,
    seeds: np.ndarray,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    epoch: int,
    evaluated: torch.nn.Module | None = None,
    validation_share: tuple[int, int] = (0, 1),
    gather: Callable[[np.ndarray], np.ndarray] | None = None,
) -> EpochResult:
    """Train one epoch on ``seeds``, then measure validation AUPRC: on the sampled neighbourhoods of
    :func:`validation_sample`'s nodes (neighbour sampling), or over the full graph (``sampling="full"``).

    Args:
        evaluated: the module to validate (the unwrapped model under DDP); default ``model``.
        validation_share: ``(rank, world)``: with neighbour sampling this process scores the ``rank``-th of
            ``world`` contiguous slices of the validation nodes (its own sampling seed), and ``gather`` joins
            every process's logits in rank order, so that each worker of a DDP run validates a share instead of
            all of it and every worker gets the same AUPRC. The default ``(0, 1)`` scores all of them here.
        gather: this process's logits → every process's, concatenated in rank order (needed when ``world > 1``).

    Raises:
        ValueError: ``world > 1`` without ``gather``, or a rank outside ``[0, world)``.
    """
    rank, world = validation_share
    if not 0 <= rank < world or (world > 1 and gather is None):
        raise ValueError(f"validation_share must be (rank, world), 0 <= rank < world, with gather: {validation_share}")
    started, cpu = time.perf_counter(), time.process_time()
    loss = train_epoch(model, td, seeds, optimizer, config, device, epoch)
    validating = time.perf_counter()
    if config.sampling == "full":
        aps = validation_auprc(predict_logits(evaluated or model, td.data, device), td.targets, td.val, td.target_names)
    else:
        nodes, weights = validation_sample(td, config)
        logits = validation_logits(evaluated or model, td, config, device, validation_share)
        if gather is not None and world > 1:
            logits = gather(logits)
        aps = auprc_by_target(logits, td.targets.numpy()[nodes], td.target_names, weights)
    ended = time.perf_counter()
    mean = float(np.nanmean(list(aps.values()))) if any(not np.isnan(v) for v in aps.values()) else float("nan")
    return EpochResult(epoch, loss, aps, mean, ended - started, ended - validating, time.process_time() - cpu)


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
