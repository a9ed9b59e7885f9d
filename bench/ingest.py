"""Ingestion benchmark: online (batched, exactly-once transactions) against bulk (``neo4j-admin import``).

Generates a synthetic exchange (or reads ``--data``), prepares it once (read, validate, aggregate, plan
batches), then, on the same prepared rows and in this one process:

1. starts its own Neo4j (fresh home in a temporary folder, free ports, 2g heap, 2g page cache) and writes the
   graph online, batch by batch, as ``ringwatch ingest`` does;
2. starts a second server in a second fresh home and builds the same graph with the bulk importer.

Both servers are always stopped (``try/finally``). Online-to-bulk ratios come from the same run, so they hold
up on a noisy machine better than absolute figures do.

Usage::

    python bench/ingest.py --accounts 100000 --seed 7                 # generate, then both paths
    python bench/ingest.py --data /tmp/x100k --batch-size 20000       # an existing folder
    python bench/ingest.py --accounts 1000000 --heap 2g --pagecache 2g --keep /tmp/bench1m
    python bench/ingest.py --data /tmp/x100k --paths none --repeat 3   # validation + aggregation only

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import neo4j
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph import schema as s
from graph.driver import open_driver
from graph.errors import Neo4jServerError
from graph.local_server import LocalNeo4j, free_ports
from graph.neo4j_conf import FAST_SHUTDOWN_CONF
from graph.queries.inspect import counts_per_label_and_type
from graph.settings import Settings
from graph.writer import BatchWriter
from ingest.load import DEFAULT_BATCH_SIZE, PreparedRun, prepare, write_graph
from ingest.privacy import Hasher

#: A fixed key: the benchmark's hashes need to be stable, not secret.
BENCH_HASH_KEY = "ringwatch-benchmark-key-not-a-secret"
DATABASE = "neo4j"


class Progress:
    """Writes ``stage done/total`` lines to stderr, at most one every ``every`` seconds per stage."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.started = time.perf_counter()
        self._last: tuple[str, float] = ("", 0.0)

    def say(self, line: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f}s] {line}", file=sys.stderr, flush=True)

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != self._last[0] or now - self._last[1] >= self.every or done == total:
            self._last = (stage, now)
            self.say(f"{stage} {done}/{total}")


class RssSampler:
    """Samples the resident memory of a process tree found through a pid file (the server restarts in bulk)."""

    def __init__(self, pid_file: Path, interval: float = 0.5) -> None:
        self.pid_file = pid_file
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                proc = psutil.Process(int(self.pid_file.read_text().strip()))
                self.peak = max(self.peak, proc.memory_info().rss)
            except (OSError, ValueError, psutil.Error):
                continue

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def dir_size(path: Path) -> int:
    """Bytes in the files under ``path`` (0 if missing)."""
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def store_size(server: LocalNeo4j) -> dict[str, float]:
    data = server.layout.data_dir
    store = dir_size(data / "databases" / DATABASE)
    txlogs = dir_size(data / "transactions" / DATABASE)
    mib = 1024 * 1024
    return {
        "store_mib": round(store / mib, 1),
        "transactions_mib": round(txlogs / mib, 1),
        "total_mib": round((store + txlogs) / mib, 1),
    }


def graph_counts(driver: neo4j.Driver) -> dict[str, dict[str, int]]:
    return counts_per_label_and_type(driver, DATABASE)


@contextmanager
def server_in(home: Path, heap: str, pagecache: str, progress: Progress) -> Iterator[LocalNeo4j]:
    """A started server in a fresh ``home``; stopped on the way out whatever happens."""
    for attempt in range(1, 4):
        bolt_port, http_port = free_ports(2)
        server = LocalNeo4j(
            home=home,
            cache_dir=Settings().cache_dir,
            bolt_port=bolt_port,
            http_port=http_port,
            heap=heap,
            pagecache=pagecache,
            extra_conf=FAST_SHUTDOWN_CONF,
            on_status=progress.say,
        )
        try:
            server.start(timeout=300)
            break
        except Neo4jServerError as e:
            # On a shared machine another program can take a free port before the JVM binds it (then a
            # stranger's server answers with another password): try again on new ports.
            server.stop()
            if attempt == 3:
                raise
            progress.say(f"server did not start ({str(e).splitlines()[0][:160]}); retrying on new ports")
    try:
        yield server
    finally:
        server.stop()


def connect(server: LocalNeo4j) -> neo4j.Driver:
    # Server notifications off, as the product's driver has them (graph.driver.build_driver): otherwise every
    # "property key does not exist" hint of a first run lands in the bench's stderr.
    driver = open_driver(
        server.uri,
        server.username,
        server.password(),
        notifications_min_severity=neo4j.NotificationMinimumSeverity.OFF,
    )
    driver.verify_connectivity()
    return driver


def throughput(events: int, rels: int, rows: int, prepare_s: float, write_s: float) -> dict[str, Any]:
    total = prepare_s + write_s
    return {
        "seconds": {"prepare_validate": round(prepare_s, 2), "write": round(write_s, 2), "total": round(total, 2)},
        "events_per_s": round(events / total),
        "events_per_s_write": round(events / write_s),
        "relationships_per_s": round(rels / write_s),
        "graph_rows_per_s": round(rows / write_s),
    }


def online_path(run: PreparedRun, home: Path, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    with server_in(home, args.heap, args.pagecache, progress) as server, RssSampler(server.pid_file) as neo_rss:
        with connect(server) as driver:
            writer = BatchWriter(driver, DATABASE, "bench-online", job="bench")
            progress.say("online: writing")
            t = time.perf_counter()
            written, skipped, _ = write_graph(run, writer, progress)
            seconds = time.perf_counter() - t
            counts = graph_counts(driver)
            if args.verify:
                counts["dump"] = _dump(driver)
        progress.say(f"online: {written} ledger chunks in {seconds:.1f}s")
    return {
        "write_s": seconds,
        "chunks_written": written,
        "chunks_skipped": skipped,
        "counts": counts,
        "neo4j_peak_rss_mib": round(neo_rss.peak / 2**20),
        "store": store_size(server),
    }


def bulk_path(run: PreparedRun, home: Path, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from ingest.bulk import bulk_load  # imported here: it imports ingest.load, which the bench may reload

    with server_in(home, args.heap, args.pagecache, progress) as server, RssSampler(server.pid_file) as neo_rss:
        with connect(server) as driver:
            progress.say("bulk: importing")
            t = time.perf_counter()
            steps = bulk_load(run, server, driver, DATABASE, "bench-bulk", progress)
            seconds = time.perf_counter() - t
        with connect(server) as fresh:  # the import replaced the store: old bookmarks no longer apply
            counts = graph_counts(fresh)
            if args.verify:
                counts["dump"] = _dump(fresh)
        progress.say(f"bulk: {seconds:.1f}s")
    return {
        "write_s": seconds,
        "steps_s": {k: round(v, 2) for k, v in steps.items()},
        "counts": counts,
        "neo4j_peak_rss_mib": round(neo_rss.peak / 2**20),
        "store": store_size(server),
    }


def _dump(driver: neo4j.Driver) -> Any:
    from tests.graph_dump import dump  # only for --verify: the test suite's canonical graph dump

    return dump(driver)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run both paths, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="existing folder of contract tables (skips generation)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--keep", type=Path, help="keep the generated data and both server homes here")
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="2g")
    parser.add_argument(
        "--paths", default="online,bulk", help="comma-separated subset of online,bulk; none: prepare only"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="prepare this many times (wall and CPU seconds of each; the last is used)"
    )
    parser.add_argument("--verify", action="store_true", help="also check online and bulk built the same graph")
    args = parser.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p and p != "none"]
    if not set(paths) <= {"online", "bulk"} or (not paths and args.paths != "none"):
        parser.error(f"--paths must name online and/or bulk, or be none, got {args.paths!r}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    # A plain `kill` ends the run through the `finally` blocks, so the servers it started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    progress = Progress()
    report: dict[str, Any] = {"accounts": args.accounts, "seed": args.seed, "batch_size": args.batch_size}

    base = args.keep or Path(tempfile.mkdtemp(prefix="ringwatch-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        folder = args.data
        if folder is None:
            from ingest.synthetic import generate_exchange

            folder = base / "data"
            progress.say(f"generating {args.accounts} accounts into {folder}")
            summary = generate_exchange(args.accounts, args.seed, folder)
            report["generate_s"] = round(summary.seconds, 2)
        else:
            report["data"] = str(folder)
        attempts = []
        for _ in range(args.repeat):
            load = [round(x, 2) for x in os.getloadavg()]
            t, cpu = time.perf_counter(), time.process_time()
            run = prepare(folder, Hasher(BENCH_HASH_KEY), args.batch_size, progress)
            prepare_s = time.perf_counter() - t
            attempts.append({"wall_s": round(prepare_s, 2), "cpu_s": round(time.process_time() - cpu, 2), "load": load})
        report["prepare_attempts"] = attempts
        events = sum(v.read for v in run.validations.values())
        rows = sum(len(f) for f in run.graph_rows.values())
        report.update(
            {
                "accounts": int(run.validations["accounts"].read) if "accounts" in run.validations else args.accounts,
                "events_read": int(events),
                "events_by_table": {n: int(v.read) for n, v in run.validations.items()},
                "graph_rows": int(rows),
                "batches": len(run.batches),
                "chunks": len(run.chunks),
                "prepare_validate_s": round(prepare_s, 2),
            }
        )

        results: dict[str, dict[str, Any]] = {}
        for name in paths:
            fn = online_path if name == "online" else bulk_path
            results[name] = fn(run, base / f"neo4j-{name}", args, progress)
        dumps = {n: r["counts"].pop("dump", None) for n, r in results.items()}
        for name, r in results.items():
            counts = r["counts"]
            domain_nodes = sum(n for label, n in counts["nodes"].items() if label != s.INGEST_BATCH.label)
            rels = sum(counts["relationships"].values())
            r.update(throughput(events, rels, rows, prepare_s, r.pop("write_s")))
            r["nodes_written"] = domain_nodes
            r["ledger_nodes"] = counts["nodes"].get(s.INGEST_BATCH.label, 0)
            r["relationships_written"] = rels
            report[name] = r
        if {"online", "bulk"} <= results.keys():
            on, bulk = results["online"], results["bulk"]
            report["same_counts"] = on["counts"] == bulk["counts"]
            if args.verify:
                report["same_graph"] = dumps["online"] == dumps["bulk"]
            report["online_over_bulk"] = {
                "write_throughput": round(bulk["seconds"]["write"] / on["seconds"]["write"], 3),
                "end_to_end_throughput": round(bulk["seconds"]["total"] / on["seconds"]["total"], 3),
                "aim": 0.5,
            }
        report["python_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
