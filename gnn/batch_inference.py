"""Scoring with Ray Data, for graphs or clusters where one process is not the right size.

The default scoring path (:meth:`gnn.estimator.RiskModel.decision_function`) runs full-graph inference in
one process. This job spreads it over Ray Data actors instead: each :class:`AccountScorer` loads the model
folder and the graph snapshot **once**, then scores batches of accounts — for each batch it takes the
accounts' complete ``num_layers``-hop neighbourhood (every neighbour at every hop, so the result equals
full-graph inference, not a sampled estimate), runs the GNN on it, and calibrates with the baseline's margins
of the same accounts. Batches stream back to the caller with ``iter_batches``; nothing is collected with
``take_all``.

Ray runs locally unless ``RAY_ADDRESS`` (``InferenceConfig.address``) names a cluster
(:func:`gnn.runtime.init_ray`); on a cluster the model folder and
snapshot must be on storage every node can read. How many actors and how big a batch come from
:class:`InferenceConfig`, not from this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from gnn.estimator import RiskModel
from gnn.known_ties import known_fraud_ties
from gnn.runtime import init_ray
from gnn.sampling import make_neighbor_loader
from gnn.snapshot import read_snapshot
from gnn.source_choice import KNOWN_TIES
from gnn.train import standardised
from graph import schema as s
from graph.errors import ModelError


@dataclass(frozen=True)
class InferenceConfig:
    """Scaling of a Ray Data scoring run.

    Attributes:
        actors: scorer actors (each holds the graph and model in memory).
        batch_size: accounts per batch.
        cpus_per_actor: CPUs Ray reserves per actor (also its torch threads).
        address: the Ray cluster (``Settings.ray_address``, ``RAY_ADDRESS``); None starts a local Ray.
    """

    actors: int = 1
    batch_size: int = 4096
    cpus_per_actor: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        for name in ("actors", "batch_size", "cpus_per_actor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


class AccountScorer:
    """A Ray Data actor: loads the model and snapshot once, then scores batches of account positions.

    Args:
        model_dir: a folder written by :meth:`RiskModel.save`.
        snapshot_dir: the graph snapshot to score.
        threads: torch threads of this actor.
    """

    def __init__(self, model_dir: str, snapshot_dir: str, threads: int = 1) -> None:
        torch.set_num_threads(threads)  # an actor is a process of its own (see gnn.runtime)
        self.model = RiskModel.load(Path(model_dir))
        graph = read_snapshot(Path(snapshot_dir))
        self.model.check_compatible(graph)
        self.data = standardised(graph, self.model.scaler)  # type: ignore[arg-type]
        self.baseline = self.model.baseline_raw(graph)
        self.ties = known_fraud_ties(graph)
        self.hops = [-1] * self.model.config.num_layers

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Scores of the accounts at positions ``batch["id"]``: one column per threat, plus ``position``."""
        positions = torch.as_tensor(batch["id"], dtype=torch.long)
        loader = make_neighbor_loader(
            self.data, self.hops, (s.ACCOUNT.label, positions), batch_size=len(positions), shuffle=False, seed=0
        )
        sub = next(iter(loader))
        gnn = self.model.gnn
        gnn.eval()  # type: ignore[union-attr]
        logits = gnn(sub.x_dict, sub.edge_index_dict)[: len(positions)].numpy()  # type: ignore[misc]
        raw = {"gnn": logits}
        if self.baseline is not None:
            raw["baseline"] = self.baseline[positions.numpy()]
        raw[KNOWN_TIES] = self.ties[positions.numpy()]
        scores = self.model.calibrate(raw)
        out = {"position": positions.numpy()}
        out.update({t: scores[:, i] for i, t in enumerate(s.THREATS)})
        return out


def iter_scores(
    model_dir: Path, snapshot_dir: Path, num_accounts: int, config: InferenceConfig | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Stream ``{"position", <threat>…}`` batches for every account, scored by Ray Data actors."""
    import ray

    config = config or InferenceConfig()
    init_ray(config.address)
    # The positions as blocks of about one batch each, made here: left to itself ``ray.data.range`` put all of them
    # in one block (one actor scored, the others waited), and its read task needs a CPU of its own, which never
    # comes when the actors hold every CPU (2 actors on 2 cores waited for ever).
    blocks = max(config.actors, math.ceil(num_accounts / config.batch_size))
    positions = [pa.table({"id": part}) for part in np.array_split(np.arange(num_accounts, dtype=np.int64), blocks)]
    scored = ray.data.from_arrow(positions).map_batches(
        AccountScorer,
        fn_constructor_args=(str(model_dir), str(snapshot_dir), config.cpus_per_actor),
        batch_size=config.batch_size,
        batch_format="numpy",
        concurrency=config.actors,
        num_cpus=config.cpus_per_actor,
    )
    yield from scored.iter_batches(batch_size=config.batch_size, batch_format="numpy")


def main(model_dir: Path, snapshot_dir: Path, num_accounts: int, config: InferenceConfig | None = None) -> np.ndarray:
    """Calibrated scores ``[num_accounts, n_threats]`` computed by Ray Data (see the module docstring)."""
    scores = np.full((num_accounts, len(s.THREATS)), np.nan)
    for batch in iter_scores(model_dir, snapshot_dir, num_accounts, config):
        scores[batch["position"]] = np.stack([batch[t] for t in s.THREATS], axis=1)
    missing = int(np.isnan(scores).any(axis=1).sum())
    if missing:
        raise ModelError(
            f"Ray Data scoring returned no score for {missing} of {num_accounts} accounts; "
            "nothing was written, run the scoring again"
        )
    return scores
