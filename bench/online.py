"""Online API benchmark: latency and throughput of ``POST /v1/score`` and ``POST /v1/events`` over HTTP on
127.0.0.1, the split of a live score's time, and the online cost per account against the batch job's.

Trains one model, once, offline on a small exchange (:func:`bench.score.train_model`). Then, for each
``--accounts`` size, in a fresh Neo4j of its own (temporary home, free ports):

1. generates the exchange and bulk-loads it (setup, timed but not the point);
2. **batch** — exports the graph and scores every account as the batch job does
   (:func:`gnn.export.export_graph`, :func:`gnn.build.build_risk_graph`, :func:`serving.score.plan_run`), saves
   the plan where the API's degraded mode reads it and the feature store beside it
   (:func:`serving.feature_store.write_feature_store`, timed apart, with its size); the per-account batch cost
   is ``(export + plan) / accounts``;
3. starts ``ringwatch serve`` as a process of its own (uvicorn, one worker, an API key) and waits for
   ``/readyz``;
4. **time split** — ``--split-sample`` accounts scored one by one in this process through the API's scorer
   (:class:`serving.api.scorer.OnlineScorer` over the feature store): Neo4j read, feature building and model,
   the accounts read, and the largest difference from the batch score — once as ``/v1/score`` scores an
   account (``stored``: nothing changed since the batch run) and once recomputed as after an event
   (``recomputed``);
5. **events in CPU time** — ``--cpu-events`` fresh logins written and their accounts recomputed one at a time in
   this process, as ``POST /v1/events`` does (:class:`serving.api.events.EventWriter`, then the scorer with
   ``recompute``): this process's CPU time per event, write and recompute apart (the machine's other work inflates
   wall time far more than CPU time: compare code versions by this, the same command on each);
6. **load** — for each concurrency in ``--concurrency`` (default 1, 8, 32), a bounded load generator: a fixed
   number of requests (``--requests``) or a time limit (``--seconds``), whichever comes first, spread over that
   many client threads, each sending its next request as soon as the last one is answered. ``/v1/score`` asks
   for random existing accounts; ``/v1/events`` sends fresh logins (new device and IP each: every event is
   written, then its account scored). Latency is measured by the client (p50/p95/p99) over the live answers,
   throughput is live answers per second; degraded answers (Neo4j past its timeout: the batch plan answered)
   and 503s (load shed) count apart. The server's resident memory is read after the load.

The load generator, the server and Neo4j share this machine's cores: on a small machine the figures are those
of all three together. Usage::

    python bench/online.py --accounts 20000 --requests 200 --seconds 60

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import neo4j
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PhaseMeter, finite, load_average
from bench.ingest import BENCH_HASH_KEY, DATABASE, Progress, connect, server_in
from bench.score import train_model
from gnn.build import build_risk_graph
from gnn.estimator import RiskModel
from gnn.export import export_graph
from gnn.runtime import release_memory
from graph import schema as s
from graph.driver import open_driver
from ingest.load import DEFAULT_BATCH_SIZE as INGEST_BATCH_SIZE
from ingest.load import prepare
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from serving.api.events import EventWriter
from serving.api.scorer import OnlineScorer, load_population
from serving.feature_store import STORE_DIR, FeatureStore, incident_digests, write_feature_store
from serving.score import plan_run, save_plan

API_KEY = "bench-online-key-not-a-secret-0123"
SERVED_DRIVER: dict[str, Any] = {"notifications_min_severity": neo4j.NotificationMinimumSeverity.OFF}
MODEL_NAME = "bench-online-model"
AIM_SCORE_P99_MS = 50
AIM_EVENTS_P99_MS = 80


def percentiles(latencies_s: list[float]) -> dict[str, float | None]:
    if not latencies_s:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    ms = np.asarray(latencies_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_ms": round(float(ms.mean()), 1),
    }


def _degraded(body: dict[str, Any]) -> bool:
    return bool(body.get("degraded") or body.get("account", {}).get("degraded"))


def run_load(
    url: str, make_body: Any, concurrency: int, requests: int, seconds: float, headers: dict[str, str]
) -> dict[str, Any]:
    """``requests`` POSTs to ``url`` from ``concurrency`` threads, stopping at ``seconds`` if not done."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    issued = [0]
    deadline = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(timeout=30.0, headers=headers) as http:
            while time.perf_counter() < deadline:
                with lock:
                    if issued[0] >= requests:
                        return
                    issued[0] += 1
                    body = make_body()
                t = time.perf_counter()
                try:
                    response = http.post(url, json=body)
                    code = str(response.status_code)
                    if code == "200" and _degraded(response.json()):
                        code = "200 degraded"  # answered from the batch plan: not a live score's latency
                except httpx.HTTPError as e:
                    code = type(e).__name__
                took = time.perf_counter() - t
                with lock:
                    outcomes[code] = outcomes.get(code, 0) + 1
                    if code == "200":
                        latencies.append(took)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": sum(outcomes.values()),
        "outcomes": outcomes,
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(latencies) / wall, 1) if wall else None,
        **percentiles(latencies),
        "load_average_after": load_average(),  # the machine is shared: what else ran beside the load
    }


def start_api(env: dict[str, str], port: int, progress: Progress, log: Path) -> subprocess.Popen[bytes]:
    """``ringwatch serve`` on ``port``, its stderr into ``log`` (a pipe nobody reads would block the server once
    its logs filled it); returns once ``/readyz`` answers 200."""
    cmd = [str(Path(sys.executable).parent / "ringwatch"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ringwatch serve exited: {log.read_bytes().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.terminate()
    raise RuntimeError("ringwatch serve did not become ready in 600 s")


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` (Linux), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_size(model: RiskModel, model_dir: Path, accounts: int, base: Path, args: argparse.Namespace) -> dict:
    progress = Progress()
    report: dict[str, Any] = {"accounts_requested": accounts, "load_average_start": load_average()}
    folder, home, data_dir = base / "data", base / "neo4j", base / "ringwatch-data"
    with server_in(home, args.heap, args.pagecache, progress) as server, PhaseMeter(server.pid_file) as meter:
        with meter.phase("generate"):
            generate_exchange(accounts, args.seed, folder)
        with meter.phase("prepare_validate"):
            run = prepare(folder, Hasher(BENCH_HASH_KEY), INGEST_BATCH_SIZE, progress)
        with connect(server) as driver, meter.phase("bulk_load"):
            from ingest.bulk import bulk_load

            bulk_load(run, server, driver, DATABASE, "bench-online-bulk", progress)
        del run
        release_memory()
        shutil.rmtree(folder, ignore_errors=True)

        with connect(server) as driver:
            with meter.phase("batch_export") as export_phase:
                progress.say(f"[{accounts}] batch: exporting")
                tables = export_graph(driver, DATABASE, progress=progress)
                graph = build_risk_graph(tables.nodes, tables.rels)
            with meter.phase("batch_plan") as plan_phase:
                progress.say(f"[{accounts}] batch: scoring {graph.num_accounts} accounts")
                batch_run, frame = plan_run(model, graph, MODEL_NAME)
            n = graph.num_accounts
            run_folder = data_dir / "scoring" / batch_run.run_id
            save_plan(run_folder, batch_run, frame)
            with meter.phase("feature_store") as store_phase:
                progress.say(f"[{accounts}] batch: writing the feature store")
                digests = incident_digests(tables.rels, graph.ids[s.ACCOUNT.label])
                write_feature_store(run_folder, batch_run.run_id, model, MODEL_NAME, graph, digests)
            ids = list(frame[s.ACCOUNT.key])
            del graph, tables
            release_memory()
            store = FeatureStore.load(run_folder / STORE_DIR)
            batch_s = export_phase["seconds"] + plan_phase["seconds"]
            report["accounts"] = n
            report["batch"] = {
                "export_s": export_phase["seconds"],
                "plan_s": plan_phase["seconds"],
                "per_account_ms": round(1000 * batch_s / n, 3),
                "per_account_ms_plan_only": round(1000 * plan_phase["seconds"] / n, 3),
            }
            report["feature_store"] = {
                "write_s": store_phase["seconds"],
                "mib": round(store.nbytes() / 2**20, 1),
                "bytes_per_account": round(store.nbytes() / n),
                "nodes": store.meta["counts"],
            }

            # -- time split, one account at a time, in this process --------------------------------------
            with meter.phase("population") as pop_phase:
                context = load_population(driver, DATABASE)
            report["population_s"] = pop_phase["seconds"]
            rng = random.Random(args.seed)
            sample = rng.sample(ids, min(args.split_sample, len(ids)))
            plan_rows = frame.set_index(s.ACCOUNT.key)
            scorer = OnlineScorer(
                model,
                MODEL_NAME,
                context,
                batch_labels=plan_rows["label"],
                store=store,
                batch_reasons=plan_rows["reasons"],
            )
            # The in-process parts talk to Neo4j as the server does: notifications off (build_driver's default;
            # the driver would otherwise parse and log a warning per field read, in the figures).
            served = open_driver(server.uri, server.username, server.password(), **SERVED_DRIVER)
            report["split"] = {}
            for key, recompute in (("stored", False), ("recomputed", True)):
                progress.say(f"[{accounts}] time split, {key}")
                report["split"][key], total = time_split(served, scorer, sample, frame, recompute)
                if key == "stored":
                    online_ms = 1000 * total / len(sample)
            progress.say(f"[{accounts}] {args.cpu_events} events in CPU time")
            report["events_cpu"] = events_cpu(served, scorer, ids, args.cpu_events, args.seed)
            served.close()
            report["online_vs_batch"] = {
                "online_per_account_ms": round(online_ms, 2),
                "batch_per_account_ms": report["batch"]["per_account_ms"],
                "ratio": round(online_ms / report["batch"]["per_account_ms"], 1),
            }

        # -- load over HTTP --------------------------------------------------------------------------------
        port = free_port()
        env = {
            **os.environ,
            "NEO4J_URI": server.uri,
            "NEO4J_USERNAME": server.username,
            "NEO4J_PASSWORD": server.password(),
            "NEO4J_DATABASE": DATABASE,
            "RINGWATCH_HASH_KEY": BENCH_HASH_KEY,
            "RINGWATCH_DATA_DIR": str(data_dir),
            "RINGWATCH_API_KEYS": API_KEY,
            "RINGWATCH_API_MODEL": str(model_dir),
            "RINGWATCH_API_MAX_IN_FLIGHT": str(max(args.concurrency) + 8),
            "RINGWATCH_API_NEO4J_TIMEOUT_S": "10",
        }
        with meter.phase("api_start") as ph:
            progress.say(f"[{accounts}] starting ringwatch serve")
            api = start_api(env, port, progress, base / "api.log")
        report["api_start_s"] = ph["seconds"]
        try:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            base_url = f"http://127.0.0.1:{port}"
            rng = random.Random(args.seed + 1)
            counter = [0]

            def score_body() -> dict[str, str]:
                return {"account_id": rng.choice(ids)}

            def event_body() -> dict[str, Any]:
                counter[0] += 1
                return {"table": "logins", "row": fresh_login(rng.choice(ids), counter[0], "bench", 10)}

            report["load"] = {"score": [], "events": []}
            for c in args.concurrency:
                for route, body in (("score", score_body), ("events", event_body)):
                    progress.say(f"[{accounts}] /v1/{route} at concurrency {c}")
                    report["load"][route].append(
                        run_load(f"{base_url}/v1/{route}", body, c, args.requests, args.seconds, headers)
                    )
            report["api_rss_mib"] = rss_mib(api.pid)
        finally:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                api.kill()
        report["phases"] = meter.phases
    score8 = next((r for r in report["load"]["score"] if r["concurrency"] == 8), None)
    events_all = [r["p99_ms"] for r in report["load"]["events"] if r["p99_ms"] is not None]
    report["aims"] = {
        "score_p99_ms_at_8": score8["p99_ms"] if score8 else None,
        "score_p99_aim_ms": AIM_SCORE_P99_MS,
        "events_p99_ms_max": max(events_all) if events_all else None,
        "events_p99_aim_ms": AIM_EVENTS_P99_MS,
    }
    return report


def fresh_login(account_id: str, i: int, tag: str, network: int) -> dict[str, str]:
    """A login of ``account_id`` from a device and an IP address (in ``network``.0.0.0/8) nobody used before."""
    return {
        "account_id": account_id,
        "ts": "2026-02-28T12:00:00Z",
        "ip": f"{network}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "device_id": f"{tag}-device-{i}",
        "user_agent": "bench",
    }


def events_cpu(driver: Any, scorer: OnlineScorer, ids: list[str], n: int, seed: int) -> dict[str, Any]:
    """``n`` fresh logins (after 3 to warm up), each written and its account recomputed as ``POST /v1/events``
    does, one at a time in this process; CPU time of this process per event (Neo4j's own is not in it)."""
    writer = EventWriter(driver, DATABASE, Hasher(BENCH_HASH_KEY), timeout_s=30.0)
    rng = random.Random(seed + 2)
    cpu: dict[str, list[float]] = {"write": [], "recompute": []}
    wall: list[float] = []
    with driver.session(database=DATABASE, default_access_mode=neo4j.READ_ACCESS) as session:
        for i in range(n + 3):
            t0, w0 = time.process_time(), time.perf_counter()
            written = writer.write("logins", fresh_login(rng.choice(ids), i, "bench-cpu", 172))
            t1 = time.process_time()
            session.execute_read(lambda tx, a=written.account_id: scorer.score(tx, [a], recompute=True))
            t2, w2 = time.process_time(), time.perf_counter()
            if i >= 3:
                cpu["write"].append(t1 - t0)
                cpu["recompute"].append(t2 - t1)
                wall.append(w2 - w0)
    if not wall:
        return {"events": 0}
    return {
        "events": len(wall),
        "cpu_ms": {k: round(1000 * float(np.mean(v)), 1) for k, v in cpu.items()},
        "cpu_total_ms": round(1000 * float(np.mean([a + b for a, b in zip(cpu["write"], cpu["recompute"])])), 1),
        "wall": percentiles(wall),
        "load_average_after": load_average(),
    }


def time_split(
    driver: Any, scorer: OnlineScorer, sample: list[str], frame: Any, recompute: bool
) -> tuple[dict[str, Any], float]:
    """Score ``sample`` one account at a time (``recompute``: as after an event); per step latency, the accounts
    read, agreement with batch."""
    splits: dict[str, list[float]] = {"neo4j_read": [], "features": [], "model": []}
    sizes: list[int] = []
    recomputed = 0
    worst = 0.0
    batch = frame.set_index(s.ACCOUNT.key)
    with driver.session(database=DATABASE, default_access_mode=neo4j.READ_ACCESS) as session:
        session.execute_read(scorer.warm_up)
        for account_id in sample:
            field = session.execute_read(lambda tx, a=account_id: scorer.score(tx, [a], recompute=recompute))
            recomputed += len(field.recomputed)
            for k in splits:
                splits[k].append(field.timings.get(k, 0.0))
            sizes.append(field.field_accounts)
            got = field.accounts[0].scores
            worst = max(worst, max(abs(got[t] - float(batch.loc[account_id, t])) for t in s.THREATS))
    total = sum(sum(v) for v in splits.values())
    return {
        "accounts": len(sample),
        **{k: {**percentiles(v), "share": round(sum(v) / total, 3)} for k, v in splits.items()},
        "total": percentiles([sum(x) for x in zip(*splits.values())]),
        "field_accounts": {
            "p50": int(np.percentile(sizes, 50)),
            "p99": int(np.percentile(sizes, 99)),
            "max": int(max(sizes)),
        },
        "recomputed": recomputed,
        "max_abs_diff_vs_batch": worst,
    }, total


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, train the model once, bench every size, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, action="append", help="exchange size (repeatable; default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train-accounts", type=int, default=5_000)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--train-seed", type=int, default=11)
    parser.add_argument("--concurrency", type=int, action="append", help="client threads (default 1, 8, 32)")
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint and concurrency")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit per endpoint and concurrency")
    parser.add_argument("--split-sample", type=int, default=100, help="accounts scored one by one for the split")
    parser.add_argument("--cpu-events", type=int, default=40, help="events written and recomputed in-process")
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="2g")
    args = parser.parse_args(argv)
    sizes = args.accounts or [100_000]
    args.concurrency = args.concurrency or [1, 8, 32]
    if any(n < 500 for n in sizes) or any(c < 1 for c in args.concurrency) or args.requests < 1:
        parser.error("--accounts must be >= 500, --concurrency and --requests >= 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix="ringwatch-bench-online-"))
    report: dict[str, Any] = {"sizes": {}, "machine": {"cpus": os.cpu_count()}, "args": vars(args)}
    try:
        model, report["model"] = train_model(
            args.train_accounts, args.train_seed, args.train_epochs, base / "train-data", Progress()
        )
        model_dir = model.save(base / MODEL_NAME)
        for n in sizes:
            report["sizes"][str(n)] = bench_size(model, model_dir, n, base / f"size-{n}", args)
            shutil.rmtree(base / f"size-{n}", ignore_errors=True)
            release_memory()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(finite(report), indent=2, default=str))


if __name__ == "__main__":
    main()
