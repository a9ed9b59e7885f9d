"""Training under Ray Train: local Ray by default, a cluster when ``RAY_ADDRESS`` is set.

Each worker loads the graph from a snapshot folder (no database access from workers), takes an equal
share of each epoch's training accounts, and reports validation AUPRC with a checkpoint every epoch.
Workers restart from the latest checkpoint after a failure (``FailureConfig``); training stops early when
mean validation AUPRC has not improved for ``patience`` epochs. The best epoch's weights come back to the
driver, which finishes the model (baseline, calibration, per-threat choice).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnn.split import TimeSplit
from gnn.train import (
    EpochResult,
    TrainConfig,
    build_model,
    epoch_seeds,
    predict_logits,
    prepare_training,
    train_epoch,
    validation_auprc,
)

STATE_FILE = "state.pt"


@dataclass
class RayConfig:
    """How training is scaled (from the CLI / settings, never module constants)."""

    num_workers: int = 1
    use_gpu: bool | None = None  # None: use a GPU when this machine (or the cluster) has CUDA
    cpus_per_worker: float | None = None
    max_failures: int = 2
    storage_path: Path | None = None
    address: str | None = None  # None: RAY_ADDRESS, else a local Ray


def train_risk_model_worker(loop_config: dict[str, Any]) -> None:
    """The per-worker loop: load the snapshot, train with DDP, report metrics and checkpoints each epoch."""
    import ray.train
    import ray.train.torch as rtt

    from gnn.snapshot import read_snapshot

    config = TrainConfig(**{**loop_config["train"], "fanout": tuple(loop_config["train"]["fanout"])})
    split = TimeSplit(**loop_config["split"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config.threads or max(1, int(loop_config["threads"]) - 1))
    torch.manual_seed(config.seed)

    graph = read_snapshot(Path(loop_config["snapshot"]))
    td = prepare_training(graph, split)
    device = rtt.get_device() if torch.cuda.is_available() and loop_config.get("use_gpu") else torch.device("cpu")
    model = build_model(td.data, config)
    model = rtt.prepare_model(model, move_to_device=device,
                              parallel_strategy_kwargs={"find_unused_parameters": True})
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, best, best_epoch, stale, history, best_state = 0, -1.0, 0, 0, [], None

    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, best, best_epoch, stale = state["epoch"] + 1, state["best"], state["best_epoch"], state["stale"]
        history, best_state = state["history"], state["best_state"]

    fail_at = loop_config.get("fail_once_at_epoch")
    for epoch in range(start, config.epochs):
        if fail_at is not None and epoch == fail_at and rank == 0 and not checkpoint_marked(loop_config):
            mark_checkpoint_failure(loop_config)
            raise RuntimeError(f"injected worker failure at epoch {epoch} (testing resume)")
        t0 = time.perf_counter()
        seeds = epoch_seeds(td, config, epoch)
        share = len(seeds) // world * world
        seeds = seeds[:share][rank::world]
        loss = train_epoch(model, td, seeds, optimizer, config, device, epoch)
        aps = validation_auprc(predict_logits(_unwrap(model), td.data, device), td.targets, td.val)
        mean_ap = float(np.nanmean(list(aps.values())))
        result = EpochResult(epoch, loss, aps, mean_ap, time.perf_counter() - t0)
        history.append(result.__dict__)
        if mean_ap > best:
            best, best_epoch, stale = mean_ap, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
        else:
            stale += 1
        done = stale >= config.patience or epoch == config.epochs - 1
        metrics = {"epoch": epoch, "loss": loss, "val_auprc_mean": mean_ap, "best_epoch": best_epoch,
                   "done": done, **{f"val_auprc_{k}": v for k, v in aps.items()}}
        with tempfile.TemporaryDirectory() as folder:
            ckpt = None
            if rank == 0:
                torch.save({"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch, "best": best, "best_epoch": best_epoch, "stale": stale,
                            "history": history, "best_state": best_state}, Path(folder) / STATE_FILE)
                ckpt = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=ckpt)
        if done:
            break


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def checkpoint_marked(loop_config: dict[str, Any]) -> bool:
    return Path(loop_config["failure_marker"]).exists()


def mark_checkpoint_failure(loop_config: dict[str, Any]) -> None:
    Path(loop_config["failure_marker"]).write_text("failed once\n", encoding="utf-8")


def init_ray(address: str | None) -> None:
    """Connect to ``address`` / ``RAY_ADDRESS`` when given, else start a local Ray sized to this machine."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local single-user Ray: no token files
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def fit_with_ray(snapshot: Path, split: TimeSplit, config: TrainConfig, scaling: RayConfig,
                 run_name: str, fail_once_at_epoch: int | None = None) -> tuple[dict[str, torch.Tensor], list[dict]]:
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
        scaling_config=ScalingConfig(num_workers=scaling.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {run_name} produced no checkpoint: {result.error}")
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
    return state["best_state"], state["history"]
