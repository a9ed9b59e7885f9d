"""The GADBench-style benchmark protocol: the same models on any graph, over seeds, with a no-graph baseline.

Protocols (over labelled target nodes; unlabelled nodes stay in the graph but are never trained or tested on):

- ``full`` (fully supervised): the data set's own splits (split ``seed % k``), else a stratified 40/20/40
  train/validation/test split drawn with the seed;
- ``semi`` (semi-supervised, as GADBench): 20 positive + 80 negative training nodes and as many for
  validation, drawn with the seed, the rest tested. A class too small for that (Bitcoin-OTC has 136 labelled
  benign accounts) gives each of training and validation at most 40 % of it; the split sizes are reported.

Per seed, on the test nodes: AUROC, AUPRC and Recall@K (K = the number of test positives) of

- ``gnn`` — the hetero GraphSAGE (:func:`gnn.train.train_gnn`), calibrated on validation;
- ``graph_boost`` — the graph-aggregated LightGBM baseline (:func:`gnn.baseline.graph_neighbourhood_features`);
- ``shipped`` — what :class:`gnn.graph_model.GraphRiskModel` ships (the per-target choice on validation);
- ``no_graph`` — LightGBM on the node's own features only (no edge is used);
- one row per extra model passed as ``variants`` (name → :data:`gnn.graph_model.GnnFactory`), trained in the
  same protocol on the same splits.

Each row reports mean ± standard deviation over the seeds, the seconds its training took, and the run reports
the process's peak resident memory.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from gnn.baseline import GraphBoostBaseline
from gnn.graph_model import GnnFactory, GraphRiskModel
from gnn.metrics import threat_metrics
from gnn.research.datasets import GraphDataset
from gnn.train import TrainConfig

PROTOCOLS = ("semi", "full")
METRICS = ("auroc", "auprc", "recall_at_k")
#: GADBench's semi-supervised budget per class, for training and again for validation.
SEMI_POSITIVES, SEMI_NEGATIVES = 20, 80
#: The most of a class that training (and again validation) may take in the semi-supervised protocol.
SEMI_MAX_SHARE = 0.4
#: The research runs' GNN settings: whole-graph steps (the public graphs are small), early stopping. The
#: super-node cap (:data:`graph.supernodes.MODEL_SUPERNODE_CAP`) keeps the baseline's 2-hop means off nodes
#: shared by more target nodes (an S-FFSD transaction type links thousands of accounts).
RESEARCH_CONFIG = TrainConfig(sampling="full", epochs=100, patience=20, lr=0.01)


def split_nodes(ds: GraphDataset, protocol: str, seed: int) -> dict[str, np.ndarray]:
    """Train / validation / test node indices of ``ds`` for one seed (module docstring).

    Raises:
        ValueError: an unknown protocol, or too few labelled nodes of a class.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    labelled = ds.labelled
    y = ds.labels[labelled]
    if (y == 1).sum() < 3 or (y == 0).sum() < 3:
        raise ValueError(f"{ds.name}: needs at least 3 labelled nodes of each class, has {np.bincount(y, minlength=2)}")
    if protocol == "full":
        if ds.splits:
            split = ds.splits[seed % len(ds.splits)]
            return {k: np.intersect1d(v, labelled) for k, v in split.items()}
        train, rest = train_test_split(labelled, train_size=0.4, stratify=y, random_state=seed)
        val, test = train_test_split(rest, train_size=1 / 3, stratify=ds.labels[rest], random_state=seed)
        return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls, wanted in ((1, SEMI_POSITIVES), (0, SEMI_NEGATIVES)):
        nodes = rng.permutation(labelled[y == cls])
        k = min(wanted, int(len(nodes) * SEMI_MAX_SHARE))
        parts["train"].append(nodes[:k])
        parts["val"].append(nodes[k : 2 * k])
        parts["test"].append(nodes[2 * k :])
    return {key: np.sort(np.concatenate(v)) for key, v in parts.items()}


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC and Recall@K (K = positives) of ``score`` on labels ``y``."""
    m = threat_metrics(y, score, 0.5)
    return {k: float(m[k]) for k in METRICS}


def peak_memory_mib() -> float:
    """The process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class BenchResult:
    """One data set under one protocol over several seeds."""

    dataset: dict[str, Any]
    protocol: str
    seeds: list[int]
    config: dict[str, Any]
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    peak_memory_mib: float = 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        """Per model: mean and std of each metric and of the seconds, over the seeds."""
        out: dict[str, dict[str, float]] = {}
        models = self.per_seed[0]["models"] if self.per_seed else {}
        for name in models:
            rows = [s["models"][name] for s in self.per_seed]
            stats: dict[str, float] = {}
            for key in (*METRICS, "seconds"):
                values = np.array([r[key] for r in rows], dtype=float)
                stats[f"{key}_mean"] = float(np.nanmean(values))
                stats[f"{key}_std"] = float(np.nanstd(values))
            out[name] = stats
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    def table(self) -> str:
        """A Markdown table, one row per model: mean ± std of each metric and of the seconds."""
        lines = [
            f"**{self.dataset['name']}** — protocol `{self.protocol}`, {len(self.seeds)} seeds, "
            f"peak memory {self.peak_memory_mib:.0f} MiB",
            "",
            "| model | AUROC | AUPRC | Recall@K | train s |",
            "|---|---|---|---|---|",
        ]
        for name, s in self.summary().items():
            cells = [f"{s[f'{k}_mean']:.3f} ± {s[f'{k}_std']:.3f}" for k in METRICS]
            lines.append(f"| {name} | {' | '.join(cells)} | {s['seconds_mean']:.1f} |")
        return "\n".join(lines)


def no_graph_scores(ds: GraphDataset, split: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """The no-graph baseline: LightGBM on the target nodes' own features (no edge), trained on ``split``'s
    training nodes and early-stopped on its validation nodes; raw scores of every target node."""
    x = ds.data[ds.target_type].x.numpy()
    y = (ds.labels == 1).astype(np.float32).reshape(-1, 1)
    model = GraphBoostBaseline(supernode_cap=None, seed=seed)
    model.fit(x, y, split["train"], np.ones(len(split["train"])), split["val"], ("label",))
    return model.decision_function(x)[:, 0]


def run_seed(
    ds: GraphDataset,
    protocol: str,
    seed: int,
    config: TrainConfig,
    variants: dict[str, GnnFactory] | None = None,
) -> dict[str, Any]:
    """Every model on one seed's split; each model's test metrics and training seconds."""
    split = split_nodes(ds, protocol, seed)
    labels = ds.labels.reshape(-1, 1)
    test_y = ds.labels[split["test"]] == 1
    seeded = replace(config, seed=seed)
    models: dict[str, dict[str, float]] = {}

    started = time.perf_counter()
    model = GraphRiskModel(seeded).fit(ds.data, ds.target_type, labels, split["train"], split["val"])
    fit_seconds = time.perf_counter() - started
    gnn_seconds = sum(e.seconds for e in model.result.history) if model.result else fit_seconds
    scores = model.source_scores(ds.data)
    seconds = {"gnn": gnn_seconds, "graph_boost": fit_seconds - gnn_seconds, "shipped": fit_seconds}
    for source, name in (("gnn", "gnn"), ("baseline", "graph_boost"), ("shipped", "shipped")):
        models[name] = {**ranking_metrics(test_y, scores[source][split["test"], 0]), "seconds": seconds[name]}

    started = time.perf_counter()
    plain = no_graph_scores(ds, split, seed)
    models["no_graph"] = {**ranking_metrics(test_y, plain[split["test"]]), "seconds": time.perf_counter() - started}

    for name, factory in (variants or {}).items():
        started = time.perf_counter()
        variant = GraphRiskModel(seeded, use_baseline=False, gnn_factory=factory)
        variant.fit(ds.data, ds.target_type, labels, split["train"], split["val"])
        score = variant.decision_function(ds.data)[split["test"], 0]
        models[name] = {**ranking_metrics(test_y, score), "seconds": time.perf_counter() - started}
    return {
        "seed": seed,
        "sizes": {k: int(len(v)) for k, v in split.items()},
        "test_positives": int(test_y.sum()),
        "chosen": model.choice.get("label", ""),
        "best_epoch": model.result.best_epoch if model.result else -1,
        "models": models,
    }


def run_bench(
    ds: GraphDataset,
    protocol: str = "semi",
    seeds: int = 5,
    config: TrainConfig | None = None,
    variants: dict[str, GnnFactory] | None = None,
    on_seed: Callable[[int, dict[str, Any]], None] | None = None,
) -> BenchResult:
    """The protocol over ``seeds`` seeds (0 … seeds-1) on ``ds``.

    Args:
        ds: the data set.
        protocol: ``semi`` or ``full``.
        seeds: how many seeds.
        config: the GNN's settings (default :data:`RESEARCH_CONFIG`); each seed replaces ``seed``.
        variants: extra models to compare (name → factory, see :mod:`gnn.graph_model`).
        on_seed: called after each seed with its index and result (progress).

    Raises:
        ValueError: an unknown protocol, fewer than 1 seed, or too few labelled nodes.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    config = config or RESEARCH_CONFIG
    result = BenchResult(ds.summary(), protocol, list(range(seeds)), config.as_dict())
    for seed in range(seeds):
        row = run_seed(ds, protocol, seed, config, variants)
        result.per_seed.append(row)
        if on_seed:
            on_seed(seed, row)
    result.peak_memory_mib = peak_memory_mib()
    return result
