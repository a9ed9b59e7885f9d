"""Neighbour-sampler benchmark: our pure-PyTorch sampler against torch-sparse's C++ sampler.

Generates a synthetic exchange (or reads ``--data``), prepares it without Neo4j, builds the hetero risk
graph (accounts, identifiers, forward and ``rev_`` edge types), then samples every account once in
mini-batches of ``--batch-size`` seeds with fan-out ``--fanout``, on the same seeds, alternating
samplers pass by pass so that both see the same machine noise. Reported: sampled batches per second
(sampling only, the median over passes), CPU milliseconds per batch (this thread's CPU time: steadier
than wall time on a shared machine), the mean sampled nodes and edges per batch (they should agree
between samplers to within noise), and ours / torch-sparse ratios of both, measured in this one run.
torch-sparse's sampler is single-threaded C++; ours runs with one intra-op thread (its default).
Whole ``NeighborLoader`` passes (sampling plus feature slicing) are timed too, for our sampler.

torch-sparse is never a project dependency. To include it, build it once outside the project venv::

    MAX_JOBS=2 nice -n 19 .venv/bin/pip wheel --no-build-isolation --no-deps -w /tmp/tswheels \\
        torch-scatter torch-sparse
    .venv/bin/pip install --no-deps --target /tmp/tsparse /tmp/tswheels/*.whl
    PYTHONPATH=/tmp/tsparse .venv/bin/python bench/sampler.py

Usage::

    python bench/sampler.py --accounts 200000 --seed 7 --fanout 10 10 --batch-size 1024 --passes 3

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:  # before torch_geometric, so that PyG sees it
    import torch_sparse
except ImportError:
    torch_sparse = None

import torch_geometric.typing
from torch_geometric.data import HeteroData
from torch_geometric.sampler import NeighborSampler, NodeSamplerInput

from gnn.build import build_risk_graph, tables_from_graph_rows
from gnn.sampling import TorchNeighborSampler, make_neighbor_loader
from graph.schema import ACCOUNT
from ingest.load import prepare
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange

BENCH_HASH_KEY = "x" * 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_graph(accounts: int, seed: int, data_dir: Path | None) -> tuple[HeteroData, dict[str, float]]:
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ringwatch-bench-sampler-") as tmp:
        folder = data_dir or Path(tmp)
        if data_dir is None or not any(data_dir.iterdir()):
            log(f"generating {accounts} accounts into {folder}")
            began = time.perf_counter()
            generate_exchange(accounts, seed, folder)
            timings["generate_s"] = time.perf_counter() - began
        log("preparing graph rows")
        began = time.perf_counter()
        run = prepare(folder, Hasher(BENCH_HASH_KEY))
        timings["prepare_s"] = time.perf_counter() - began
    log("building the risk graph")
    began = time.perf_counter()
    graph = build_risk_graph(*tables_from_graph_rows(run.graph_rows))
    timings["build_s"] = time.perf_counter() - began
    return graph.data, timings


def seed_batches(num_accounts: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    order = torch.randperm(num_accounts, generator=torch.Generator().manual_seed(seed))
    return list(order.split(batch_size))


def sampling_pass(sampler: NeighborSampler, batches: list[torch.Tensor]) -> tuple[float, float, int, int]:
    """Wall and CPU (this thread) seconds for one pass over ``batches``, and total sampled nodes and edges."""
    nodes = edges = 0
    wall, cpu = time.perf_counter(), time.thread_time()
    for seeds in batches:
        out = sampler.sample_from_nodes(NodeSamplerInput(input_id=None, node=seeds, input_type=ACCOUNT.label))
        nodes += sum(v.numel() for v in out.node.values())
        edges += sum(v.numel() for v in out.row.values())
    return time.perf_counter() - wall, time.thread_time() - cpu, nodes, edges


def summarise(walls: list[float], cpus: list[float], nodes: int, edges: int, batches: int) -> dict[str, Any]:
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "batches_per_s": round(batches / wall, 1),
        "cpu_ms_per_batch": round(cpu / batches * 1e3, 2),
        "pass_wall_s": [round(t, 3) for t in walls],
        "mean_nodes_per_batch": round(nodes / batches, 1),
        "mean_edges_per_batch": round(edges / batches, 1),
    }


def timed(make: Callable[[], NeighborSampler]) -> tuple[NeighborSampler, float]:
    began = time.perf_counter()
    sampler = make()
    return sampler, time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None, help="folder of contract tables (generated if empty)")
    parser.add_argument("--fanout", type=int, nargs="+", default=[10, 10])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--passes", type=int, default=3, help="timed passes over all accounts per sampler")
    parser.add_argument("--supernode-cap", type=int, default=500)
    parser.add_argument(
        "--sampler-threads",
        type=int,
        default=1,
        help="intra-op threads of our sampler (torch-sparse's sampler uses one)",
    )
    args = parser.parse_args(argv)

    data, timings = build_graph(args.accounts, args.seed, args.data)
    num_accounts = data[ACCOUNT.label].num_nodes
    batches = seed_batches(num_accounts, args.batch_size, args.seed)
    fanout = list(args.fanout)

    samplers: dict[str, NeighborSampler] = {}
    init_s: dict[str, float] = {}
    samplers["ours"], init_s["ours"] = timed(
        lambda: TorchNeighborSampler(
            data, fanout, generator=torch.Generator().manual_seed(args.seed), num_threads=args.sampler_threads
        )
    )
    samplers["ours_supernode_cap"], init_s["ours_supernode_cap"] = timed(
        lambda: TorchNeighborSampler(
            data,
            fanout,
            supernode_cap=args.supernode_cap,
            generator=torch.Generator().manual_seed(args.seed),
            num_threads=args.sampler_threads,
        )
    )
    if torch_geometric.typing.WITH_TORCH_SPARSE and not torch_geometric.typing.WITH_PYG_LIB:
        samplers["torch_sparse"], init_s["torch_sparse"] = timed(lambda: NeighborSampler(data, fanout))

    results: dict[str, dict[str, Any]] = {}
    for sampler in samplers.values():  # warm-up
        sampling_pass(sampler, batches[:3])
    walls: dict[str, list[float]] = {name: [] for name in samplers}
    cpus: dict[str, list[float]] = {name: [] for name in samplers}
    sizes: dict[str, tuple[int, int]] = {}
    for p in range(args.passes):  # samplers take turns, so that all see the same machine noise
        for name, sampler in samplers.items():
            wall, cpu, nodes, edges = sampling_pass(sampler, batches)
            walls[name].append(wall)
            cpus[name].append(cpu)
            sizes[name] = (nodes, edges)
            log(
                f"pass {p + 1}/{args.passes} {name}: {len(batches) / wall:.1f} batches/s, "
                f"{cpu / len(batches) * 1e3:.1f} ms CPU per batch"
            )
    for name in samplers:
        results[name] = {
            **summarise(walls[name], cpus[name], *sizes[name], len(batches)),
            "init_s": round(init_s[name], 3),
        }

    loader_rates: dict[str, float] = {}
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):  # PyG's feature slicing runs with torch's threads
        torch.set_num_threads(threads)
        loader = make_neighbor_loader(
            data,
            fanout,
            (ACCOUNT.label, torch.arange(num_accounts)),
            args.batch_size,
            shuffle=True,
            seed=args.seed,
            backend="torch",
            sampler_threads=args.sampler_threads,
        )
        began = time.perf_counter()
        count = sum(1 for _ in loader)
        loader_rates[f"torch_threads_{threads}"] = round(count / (time.perf_counter() - began), 1)
        log(f"NeighborLoader pass, torch threads {threads}: {loader_rates[f'torch_threads_{threads}']} batches/s")
    torch.set_num_threads(default_threads)

    node_counts = {t: int(data[t].num_nodes) for t in data.node_types}
    edge_counts = {"__".join(et): int(data[et].num_edges) for et in data.edge_types}
    report: dict[str, Any] = {
        "graph": {
            "accounts": num_accounts,
            "nodes": node_counts,
            "edges": edge_counts,
            "total_nodes": sum(node_counts.values()),
            "total_edges": sum(edge_counts.values()),
            **{k: round(v, 1) for k, v in timings.items()},
        },
        "config": {
            "fanout": fanout,
            "batch_size": args.batch_size,
            "batches_per_pass": len(batches),
            "passes": args.passes,
            "supernode_cap": args.supernode_cap,
            "sampler_threads": args.sampler_threads,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
            "torch_sparse": getattr(torch_sparse, "__version__", None),
        },
        "samplers": results,
        "ours_neighbor_loader_batches_per_s": {
            **loader_rates,
            "note": "whole NeighborLoader passes: our sampling plus PyG's feature slicing",
        },
    }
    if "torch_sparse" in results:
        ts = results["torch_sparse"]
        for name in ("ours", "ours_supernode_cap"):
            report[f"ratio_{name}_vs_torch_sparse"] = {
                "batches_per_s": round(results[name]["batches_per_s"] / ts["batches_per_s"], 2),
                "cpu_time": round(ts["cpu_ms_per_batch"] / results[name]["cpu_ms_per_batch"], 2),
            }
        report["batch_size_agreement_ours_vs_torch_sparse"] = {
            "nodes": round(results["ours"]["mean_nodes_per_batch"] / ts["mean_nodes_per_batch"], 4),
            "edges": round(results["ours"]["mean_edges_per_batch"] / ts["mean_edges_per_batch"], 4),
        }
    else:
        report["torch_sparse"] = "not importable: build it as the module docstring says, then rerun"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
