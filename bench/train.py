"""Training benchmark: epoch time plain PyTorch vs Ray Train (same epochs), peak memory, GNN vs baseline.

Generates an exchange (or reads ``--data``), builds the risk graph offline (no Neo4j), writes a snapshot
(Ray workers read it), then in this one run: trains ``--epochs`` epochs with plain PyTorch and the same
epochs under Ray Train with each worker count of ``--ray-workers`` (early stopping off, the same seeds and
data), and reports per-epoch seconds of each (training and validation apart) and their ratios: Ray against
plain, and N workers against 1 (the aims: ≤ 1.15 × per epoch; Ray's fixed start/stop cost is reported apart);
peak RSS of this process; and test-split quality of the GNN, the baseline and the shipped per-threat choice,
plus the same against ``truth.csv`` (``--no-quality`` skips it). The machine's load average is recorded
before and after each run. Sampler throughput is measured by ``bench/sampler.py``.

Usage::

    python bench/train.py --accounts 200000 --epochs 3
    python bench/train.py --accounts 100000 --epochs 2 --ray-workers 1,2 --no-quality   # multi-worker overhead
    python bench/train.py --accounts 20000 --epochs 2 --no-ray --no-quality --score-actors 1,2   # Ray Data scoring
    python bench/train.py --data EXCHANGE --epochs 6 --no-ray   # quality and epoch cost only

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn.batch_inference import InferenceConfig
from gnn.batch_inference import main as score_with_ray_data
from gnn.build import tables_from_graph_rows
from gnn.estimator import RiskModel
from gnn.evaluation import evaluate_scores, truth_targets
from gnn.ray_train import RayConfig, fit_with_ray
from gnn.snapshot import read_snapshot, write_snapshot
from gnn.split import TimeSplit
from gnn.train import TrainConfig, fit_gnn
from graph.schema import THREATS
from ingest.load import prepare
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange


def log(message: str) -> None:
    print(f"[bench/train] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ray_run(snapshot: Path, split: TimeSplit, config: TrainConfig, workers: int, storage: Path, name: str) -> dict:
    """One Ray Train run with ``workers`` workers: per-epoch seconds (rank 0's), split into training and
    validation, and the fixed cost around the epochs. ``name`` must be new: Ray Train resumes a run of the same
    name from its last checkpoint."""
    load_before = load_average()
    t = time.perf_counter()
    _, history = fit_with_ray(snapshot, split, config, RayConfig(num_workers=workers, storage_path=storage), name)
    total = time.perf_counter() - t
    epoch = float(np.mean([h["seconds"] for h in history]))
    val = float(np.mean([h.get("val_seconds", float("nan")) for h in history]))
    cpu = float(np.mean([h.get("cpu_seconds", float("nan")) for h in history]))
    return {
        "workers": workers,
        "epoch_s": round(epoch, 3),
        "epoch_train_s": round(epoch - val, 3),
        "epoch_val_s": round(val, 3),
        "epoch_cpu_s_all_workers": round(cpu, 3),
        "epochs_s": [round(h["seconds"], 2) for h in history],
        "total_s": round(total, 2),
        "fixed_overhead_s": round(total - epoch * len(history), 2),
        "val_auprc_mean": [round(h["val_auprc_mean"], 4) for h in history],
        "load_average_before_after": [load_before, load_average()],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sampling", default="neighbor", choices=["neighbor", "full"])
    ap.add_argument("--data", type=Path, help="an existing generated exchange")
    ap.add_argument("--no-ray", action="store_true", help="plain PyTorch only (quality comparisons)")
    ap.add_argument("--ray-workers", default="1", help="comma-separated Ray Train worker counts, e.g. 1,2")
    ap.add_argument("--no-quality", action="store_true", help="skip the baseline, calibration and test quality")
    ap.add_argument(
        "--score-actors",
        default="",
        help="comma-separated Ray Data actor counts to score every account with the finished model, e.g. 1,2",
    )
    ap.add_argument("--score-batch-size", type=int, default=InferenceConfig().batch_size)
    args = ap.parse_args(argv)
    worker_counts = [int(n) for n in args.ray_workers.split(",") if n]
    actor_counts = [int(n) for n in args.score_actors.split(",") if n]
    if not worker_counts or min(worker_counts) < 1:
        ap.error(f"--ray-workers must list positive worker counts, got {args.ray_workers!r}")

    work = Path(tempfile.mkdtemp(prefix="ringwatch-bench-train-"))
    try:
        data = args.data or work / "exchange"
        if args.data is None:
            log(f"generating {args.accounts:,} accounts")
            generate_exchange(args.accounts, args.seed, data)
        t = time.perf_counter()
        run = prepare(data, Hasher("bench-hash-key-0123456789"))
        write_snapshot(tables_from_graph_rows(run.graph_rows), work / "snapshot", source="bench")
        graph = read_snapshot(work / "snapshot")
        build_s = time.perf_counter() - t
        split = TimeSplit.by_quantiles(graph)
        config = TrainConfig(epochs=args.epochs, patience=args.epochs + 1, sampling=args.sampling)

        log("plain PyTorch")
        t = time.perf_counter()
        plain, td = fit_gnn(graph, split, config)
        plain_total = time.perf_counter() - t
        plain_epoch = float(np.mean([h.seconds for h in plain.history]))

        plain_load = load_average()
        ray_report = None
        if not args.no_ray:
            runs = []
            for i, workers in enumerate(worker_counts):  # a count may repeat (1,2,1,2): each count's best is compared
                log(f"Ray Train, {workers} worker(s)")
                runs.append(ray_run(work / "snapshot", split, config, workers, work / "ray", f"bench-{i}-{workers}w"))
                runs[-1]["over_plain_per_epoch"] = round(runs[-1]["epoch_s"] / plain_epoch, 3)
            best = {n: min((r for r in runs if r["workers"] == n), key=lambda r: r["epoch_s"]) for n in worker_counts}
            summary: dict[str, Any] = {f"{n}_workers_epoch_s": r["epoch_s"] for n, r in best.items()}
            if 1 in best:
                for n, r in best.items():
                    if n > 1:
                        summary[f"{n}_over_1_per_epoch"] = round(r["epoch_s"] / best[1]["epoch_s"], 3)
                        summary[f"{n}_over_1_train_s"] = round(r["epoch_train_s"] / best[1]["epoch_train_s"], 3)
                        summary[f"{n}_over_1_val_s"] = round(r["epoch_val_s"] / best[1]["epoch_val_s"], 3)
                        summary[f"{n}_over_1_cpu_s"] = round(
                            r["epoch_cpu_s_all_workers"] / best[1]["epoch_cpu_s_all_workers"], 3
                        )
            ray_report = {"summary": summary, "runs": runs}

        quality: dict = {}
        model = None
        if not args.no_quality or actor_counts:
            model, quality = finish_and_evaluate(graph, split, config, plain, td, data, evaluate=not args.no_quality)
        scoring = None
        if actor_counts and model is not None:
            model.save(work / "model")
            scoring = ray_data_runs(work / "model", work / "snapshot", graph.num_accounts, actor_counts, args)
        print(
            json.dumps(
                {
                    "accounts": graph.num_accounts,
                    "nodes": {t: int(graph.data[t].num_nodes) for t in graph.data.node_types},
                    "edges": int(sum(graph.data[e].edge_index.shape[1] for e in graph.data.edge_types)),
                    "sampling": args.sampling,
                    "epochs": args.epochs,
                    "cpu_count": os.cpu_count(),
                    "build_snapshot_s": round(build_s, 2),
                    "plain": {
                        "epoch_s": round(plain_epoch, 3),
                        "total_s": round(plain_total, 2),
                        # of each epoch, the validation (the training loop's own figure, where it reports one)
                        "epoch_val_s": [round(getattr(h, "val_seconds", float("nan")), 2) for h in plain.history],
                        "epoch_val_auprc_mean": [round(h.val_auprc_mean, 4) for h in plain.history],
                        "best_epoch": plain.best_epoch,
                        "seeds_per_epoch": len(td.train_labelled)
                        + min(
                            round(len(td.train_unlabelled) * config.unlabelled_sample),
                            getattr(config, "unlabelled_max", None) or len(td.train_unlabelled),
                        ),
                        "threads": config.resolved_threads(),
                        "load_average_after": plain_load,
                    },
                    "ray": ray_report,
                    "ray_data_scoring": scoring,
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                    "choice": model.choice if model is not None else None,
                    "test_quality_vs_truth": quality,
                },
                indent=1,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)  # snapshots, Ray's storage, the model: nothing is kept


def ray_data_runs(model_dir: Path, snapshot: Path, accounts: int, actor_counts: list[int], args: Any) -> dict:
    """Every account scored by Ray Data (:mod:`gnn.batch_inference`) with each actor count (a count may repeat):
    seconds (the actors' start, which loads the model and snapshot, included), accounts per second, each count's
    best against 1 actor's best, and whether the scores agree across actor counts."""
    runs: list[dict[str, Any]] = []
    first = None
    for actors in actor_counts:
        log(f"Ray Data scoring, {actors} actor(s)")
        load_before = load_average()
        t = time.perf_counter()
        scores = score_with_ray_data(
            model_dir, snapshot, accounts, InferenceConfig(actors=actors, batch_size=args.score_batch_size)
        )
        seconds = time.perf_counter() - t
        first = scores if first is None else first
        runs.append(
            {
                "actors": actors,
                "seconds": round(seconds, 2),
                "accounts_per_s": round(accounts / seconds),
                "max_abs_diff_vs_first": float(np.abs(scores - first).max()),
                "load_average_before_after": [load_before, load_average()],
            }
        )
    best = {n: min(r["seconds"] for r in runs if r["actors"] == n) for n in actor_counts}
    summary: dict[str, Any] = {f"{n}_actors_s": v for n, v in best.items()}
    if 1 in best:
        summary.update({f"{n}_over_1": round(v / best[1], 3) for n, v in best.items() if n > 1})
    return {"batch_size": args.score_batch_size, "summary": summary, "runs": runs}


def finish_and_evaluate(
    graph: Any, split: TimeSplit, config: TrainConfig, plain: Any, td: Any, data: Path, evaluate: bool = True
) -> tuple[RiskModel, dict]:
    """The plain run's model finished (baseline, calibration, choice) and its test quality against the truth."""
    log("baseline, calibration and choice")
    model = RiskModel(config).finish(graph, split, plain.state_dict, td, plain.history)
    if not evaluate:
        return model, {}
    raw = model.raw_scores(graph)
    scores = model.calibrate(raw)
    truth = pd.read_csv(data / "truth.csv", dtype={"account_id": str})
    targets, known = truth_targets(graph, truth)
    masks = split.masks(graph)
    test = masks["test"] & known
    quality = {}
    for name, s in {"gnn": raw["gnn"], "baseline": raw["baseline"], "shipped": scores}.items():
        res = evaluate_scores(
            s, {th: 0.0 for th in THREATS} if name != "shipped" else model.thresholds, test, targets, name
        )
        quality[name] = {
            th: {k: round(m[k], 4) for k in ("auroc", "auprc", "recall_at_k", "base_rate")}
            for th, m in res["threats"].items()
        }
    return model, quality


if __name__ == "__main__":
    main()
