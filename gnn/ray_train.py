"""Training under Ray Train: local Ray by default, the cluster at ``RayConfig.address`` (``RAY_ADDRESS``) when set.

Each worker loads the graph from a snapshot folder (no database access from workers), takes an equal
share of each epoch's training accounts and of the validation accounts (the validation logits are gathered,
so every worker computes the same AUPRC), and reports validation AUPRC with a checkpoint every epoch.
Workers restart from the latest checkpoint after a failure (``FailureConfig``); training stops early when
mean validation AUPRC has not improved for ``patience`` epochs. The best epoch's weights come back to the
driver, which finishes the model (baseline, calibration, per-threat choice).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnn.runtime import init_ray
from gnn.split import TimeSplit
from gnn.train import EarlyStopping, TrainConfig, build_model, epoch_seeds, prepare_training, run_epoch
from graph.errors import ModelError

STATE_FILE = "state.pt"


@dataclass
class RayConfig:
    """How training is scaled (from the CLI / settings, never module constants)."""

    num_workers: int = 1
    use_gpu: bool | None = None  # None: use a GPU when this machine (or the cluster) has CUDA
    cpus_per_worker: float | None = None
    max_failures: int = 2
    storage_path: Path | None = None
    address: str | None = None  # a Ray cluster (Settings.ray_address, RAY_ADDRESS); None: a local Ray


def train_risk_model_worker(loop_config: dict[str, Any]) -> None:
    """The per-worker loop: load the snapshot, train with DDP, report metrics and checkpoints each epoch."""
    import ray.train
    import ray.train.torch as rtt

    from gnn.snapshot import read_snapshot

    config = TrainConfig(**{**loop_config["train"], "fanout": tuple(loop_config["train"]["fanout"])})
    split = TimeSplit(**loop_config["split"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    # A worker is a process of its own: its thread count is its own business (see gnn.runtime).
    torch.set_num_threads(config.threads or max(1, int(loop_config["threads"]) - 1))
    torch.manual_seed(config.seed)

    graph = read_snapshot(Path(loop_config["snapshot"]))
    td = prepare_training(graph, split)
    del graph  # the worker needs only the prepared copy (standardised features): the raw one is dropped
    device = rtt.get_device() if torch.cuda.is_available() and loop_config.get("use_gpu") else torch.device("cpu")
    model: torch.nn.Module = build_model(td.data, config)
    model = rtt.prepare_model(model, move_to_device=device, parallel_strategy_kwargs={"find_unused_parameters": True})
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, history, stopping = 0, [], EarlyStopping(config.patience)

    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history, stopping = state["epoch"] + 1, state["history"], EarlyStopping(**state["stopping"])

    fail_at = loop_config.get("fail_once_at_epoch")
    for epoch in range(start, config.epochs):
        if fail_at is not None and epoch == fail_at and rank == 0 and not checkpoint_marked(loop_config):
            mark_checkpoint_failure(loop_config)
            raise RuntimeError(f"injected worker failure at epoch {epoch} (testing resume)")
        seeds = epoch_seeds(td, config, epoch)
        share = len(seeds) // world * world
        result = run_epoch(
            model,
            td,
            seeds[:share][rank::world],
            optimizer,
            config,
            device,
            epoch,
            evaluated=_unwrap(model),
            validation_share=(rank, world),
            gather=gather_logits,
        )
        if world > 1:  # the epoch's CPU over every worker: what several workers cost beyond one, whatever else runs
            result.cpu_seconds = float(sum(gather_all(result.cpu_seconds)))
        history.append(result.__dict__)
        stopping.update(result, _unwrap(model))
        done = stopping.should_stop or epoch == config.epochs - 1
        metrics = {
            "epoch": epoch,
            "loss": result.loss,
            "val_auprc_mean": result.val_auprc_mean,
            "best_epoch": stopping.best_epoch,
            "done": done,
            **{f"val_auprc_{k}": v for k, v in result.val_auprc.items()},
        }
        with tempfile.TemporaryDirectory() as folder:
            ckpt = None
            if rank == 0:
                torch.save(
                    {
                        "model": _unwrap(model).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch,
                        "history": history,
                        "stopping": asdict(stopping),
                    },
                    Path(folder) / STATE_FILE,
                )
                ckpt = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=ckpt)
        if done:
            break


def gather_all(value: Any) -> list[Any]:
    """Every worker's ``value``, in rank order (a collective call: every worker must make it)."""
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def gather_logits(part: np.ndarray) -> np.ndarray:
    """Every worker's validation logits, concatenated in rank order (each worker scores its own share of the
    validation nodes, and all of them compute the same AUPRC, hence take the same early-stopping decision)."""
    return np.concatenate(gather_all(part))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, torch.nn.Module) else model


def checkpoint_marked(loop_config: dict[str, Any]) -> bool:
    return Path(loop_config["failure_marker"]).exists()


def mark_checkpoint_failure(loop_config: dict[str, Any]) -> None:
    Path(loop_config["failure_marker"]).write_text("failed once\n", encoding="utf-8")


def fit_with_ray(
    snapshot: Path,
    split: TimeSplit,
    config: TrainConfig,
    scaling: RayConfig,
    run_name: str,
    fail_once_at_epoch: int | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Train with Ray Train; returns the best epoch's weights and the per-epoch history."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    init_ray(scaling.address)
    use_gpu = torch.cuda.is_available() if scaling.use_gpu is None else scaling.use_gpu
    cpus = scaling.cpus_per_worker or max(1.0, (os.cpu_count() or 1) // max(scaling.num_workers, 1))
    storage = (scaling.storage_path or Path(tempfile.gettempdir()) / "ringwatch-ray").resolve()
    storage.mkdir(parents=True, exist_ok=True)
    loop_config = {
        "train": config.as_dict(),
        "split": split.as_dict(),
        "snapshot": str(Path(snapshot).resolve()),
        "threads": int(cpus),
        "use_gpu": use_gpu,
        "fail_once_at_epoch": fail_once_at_epoch,
        "failure_marker": str(storage / f"{run_name}.failed-once"),
    }
    trainer = TorchTrainer(
        train_risk_model_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=scaling.num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus}
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise ModelError(f"Ray Train run {run_name} produced no checkpoint (every attempt failed): {result.error}")
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
    return state["stopping"]["best_state"], state["history"]
