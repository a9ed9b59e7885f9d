"""Training benchmark: epoch time plain PyTorch vs Ray Train (same epochs), peak memory, GNN vs baseline.

Generates an exchange (or reads ``--data``), builds the risk graph offline (no Neo4j), writes a snapshot
(Ray workers read it), then in this one run: trains ``--epochs`` epochs with plain PyTorch and the same
epochs under Ray Train (1 worker, early stopping off), and reports per-epoch seconds of each and their
ratio (the aim: Ray ≤ 1.15 × plain per epoch; Ray's fixed start/stop cost is reported apart); peak RSS of
this process; and test-split quality of the GNN, the baseline and the shipped per-threat choice, plus the
same against ``truth.csv``. Sampler throughput is measured by ``bench/sampler.py``.

Usage::

    python bench/train.py --accounts 200000 --epochs 3
    python bench/train.py --data EXCHANGE --epochs 6 --no-ray   # quality and epoch cost only

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sampling", default="neighbor", choices=["neighbor", "full"])
    ap.add_argument("--data", type=Path, help="an existing generated exchange")
    ap.add_argument("--no-ray", action="store_true", help="plain PyTorch only (quality comparisons)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ringwatch-bench-train-"))
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

    ray_report = None
    if not args.no_ray:
        log("Ray Train")
        t = time.perf_counter()
        _, history = fit_with_ray(
            work / "snapshot", split, config, RayConfig(num_workers=1, storage_path=work / "ray"), "bench"
        )
        ray_total = time.perf_counter() - t
        ray_epoch = float(np.mean([h["seconds"] for h in history]))
        ray_report = {
            "epoch_s": round(ray_epoch, 3),
            "total_s": round(ray_total, 2),
            "fixed_overhead_s": round(ray_total - ray_epoch * len(history), 2),
            "over_plain_per_epoch": round(ray_epoch / plain_epoch, 3),
        }

    log("baseline, calibration and choice")
    model = RiskModel(config).finish(graph, split, plain.state_dict, td, plain.history)
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
    print(
        json.dumps(
            {
                "accounts": graph.num_accounts,
                "nodes": {t: int(graph.data[t].num_nodes) for t in graph.data.node_types},
                "edges": int(sum(graph.data[e].edge_index.shape[1] for e in graph.data.edge_types)),
                "sampling": args.sampling,
                "epochs": args.epochs,
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
                },
                "ray": ray_report,
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "choice": model.choice,
                "test_quality_vs_truth": quality,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
