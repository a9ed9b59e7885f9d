"""Monitoring benchmark: what a monitoring run costs next to the scoring run it follows.

In a throwaway Neo4j (temporary home, free ports), for each ``--accounts`` size: generate and ingest an
exchange, train a small model on its snapshot (registered as the champion), then run the scoring job twice
with its monitor hook off (:func:`serving.scoring_job.run_scoring` ``monitor=False``), timing the second (the
baseline: a daily run with a previous run to compare with). The graph is then exported once, untimed — the
scoring job hands its graph to the monitor, so the monitor never pays for an export — and
:func:`serving.monitor.job.run_monitor` of the second run is timed with it: feature sample, drift against
the previous run and the champion's snapshot, efficacy and job health from Neo4j, alerts, history, MLflow,
Prometheus. Prints JSON: seconds of each, the ratio, and the monitor's seconds per 100 000 accounts.

Usage: ``.venv/bin/python bench/monitor.py --accounts 5000 20000``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo before bench/ (bench/ingest.py)

from gnn.build import risk_graph_from_neo4j
from gnn.snapshot import read_snapshot
from gnn.snapshot_job import take_snapshot
from gnn.train import TrainConfig
from gnn.training_job import main as train
from graph.driver import build_driver
from graph.local_server import start_throwaway
from graph.settings import Settings
from ingest.job import ingest_folder
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from serving.monitor.job import run_monitor
from serving.scoring_job import run_scoring


def bench_size(accounts: int, seed: int, cache: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp_name:
        tmp = Path(tmp_name)
        server = start_throwaway(tmp, cache)
        try:
            os.environ.update(
                NEO4J_URI=server.uri,
                NEO4J_USERNAME=server.username,
                NEO4J_PASSWORD=server.password(),
                RINGWATCH_DATA_DIR=str(tmp / "data"),
            )
            settings = Settings()
            driver = build_driver(settings)
            key = "bench-key-not-a-secret-0123456789"
            generate_exchange(accounts, seed, tmp / "exchange")
            ingest_folder(tmp / "exchange", driver, "neo4j", tmp / "data" / "rejects" / "exchange", Hasher(key))
            take_snapshot(driver, "neo4j", tmp / "snap", source="bench")
            config = TrainConfig(epochs=2, patience=2, sampling="full", hidden=16, seed=0)
            train(settings, read_snapshot(tmp / "snap"), tmp / "snap", config, None)
            run_scoring(settings, driver, monitor=False)
            started = time.perf_counter()
            second = run_scoring(settings, driver, new_run=True, monitor=False)
            scoring = time.perf_counter() - started
            graph = risk_graph_from_neo4j(driver, "neo4j")
            run_monitor(settings, driver, second.run_id, graph=graph)  # warm: imports (mlflow) paid once
            started = time.perf_counter()
            outcome = run_monitor(settings, driver, second.run_id, graph=graph)
            monitoring = time.perf_counter() - started
            driver.close()
        finally:
            server.stop()
    return {
        "accounts": accounts,
        "scoring_seconds": round(scoring, 2),
        "scoring_steps": second.seconds,
        "monitor_seconds": round(monitoring, 2),
        "monitor_steps": outcome.record.seconds,
        "ratio": round(monitoring / scoring, 3),
        "monitor_seconds_per_100k_accounts": round(monitoring * 100_000 / accounts, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[5_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ringwatch")
    args = parser.parse_args(argv)
    print(json.dumps([bench_size(n, args.seed, args.cache) for n in args.accounts], indent=2))


if __name__ == "__main__":
    main()
