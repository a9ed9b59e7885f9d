"""Scoring benchmark: inference + reasons (accounts/s) and write-back (properties/s) against a plain write.

Trains one model, once, on a small exchange (plain PyTorch, no Neo4j: a model only needs the same features
to score a bigger graph). Then, for each ``--accounts`` size, in a fresh Neo4j of its own (temporary home,
free ports, ``--heap``/``--pagecache``):

1. generates the exchange, validates it and bulk-loads it (setup, timed but not the point);
2. exports the graph (:func:`gnn.build.risk_graph_from_neo4j`);
3. **plan A** — :func:`serving.score.plan_run`: full-graph inference (the product's layer-wise pass,
   :meth:`gnn.model.RiskSAGE.inference`), labels and reasons → accounts/s;
4. **write A** — :func:`serving.score.write_scores` of plan A into the fresh graph (no previous scores);
5. **plan B** — :func:`serving.score.plan_from_scores` with A's scores moved by one ulp
   (``numpy.nextafter``) and A's labels: reasons and rows only, no inference (so plan A's time minus this
   is inference + labels);
6. **steady-state write-back, against a baseline** — ``--rounds`` rounds, each one product run and one
   baseline write of the same rows, the order alternating by round (product first in round 0). Before every
   write all scores move by one more ulp: Neo4j skips a ``SET`` that does not change a value, and a real
   next-day run changes every score; labels, reasons and the model version stay as they were, as on most
   accounts in a real rerun. Every account now has a previous score, so the product's ``prev_risk_*`` copies
   are real writes: this is the daily write-back, and the headline figure. The product run is
   ``write_scores`` of run B (later rounds: the same plan under a new run id). The **baseline** writes the
   same rows in batches of the same size, one write transaction each, with a plain
   ``UNWIND $rows AS row MATCH (a:Account {account_id: row.key}) SET a += row.props``: no ledger node, no
   ``prev_risk_*`` logic, no run record, no outcome count. Its Cypher is written inline here on purpose: it
   is a measuring device, not a product query;
7. **rerun** — right after round 0's product run, ``write_scores`` of the same run again: every batch is in
   the ledger, so 0 batches are written;
8. **since** — a ``--since`` rescoring of the accounts touched in the last ``--since-hours`` of the data
   (and their neighbourhood: :func:`serving.score.touched_since`, then ``plan_from_scores`` with
   ``touched``), reusing the scores already computed (the product's ``--since`` run also repeats the export
   and the full-graph inference, which cost what ``export`` and plan A's inference cost).
9. **the job** — the product's whole command, ``ringwatch score --snapshot`` (:func:`serving.scoring_job.run_scoring`
   with the model saved as a folder, a fresh run): first :func:`gnn.snapshot_job.take_snapshot` of the graph
   (as the training stage leaves one), then the job reads it instead of exporting. Its steps are the job's own
   ``seconds`` (read, digests, inference, plan, feature store, write-back, monitor), and the online API's
   feature store it wrote is measured on disk (``--no-job`` skips this).

**Properties counted per account** (what ``WRITE_SCORES`` sets): the 3 threat scores, ``risk_score``,
``risk_label``, ``risk_model_version``, ``risk_run_id``, ``risk_scored_at`` (8), plus ``risk_reasons`` when
it is non-null (flagged accounts only), plus the 3 ``prev_risk_*`` copies when the account had a previous
score (none in run A: setting a property to null on a fresh node stores nothing, so they are not counted
there). The baseline writes the same 8 (+ reasons) and no prev copies. Ledger nodes, the run record and its
outcome are the product's overhead and not counted as properties (their time is in the product's figure).
Rates are per second of the whole ``write_scores`` call (constraints check, run record, batches, ledger,
outcome count, finish).

A memory watchdog (:class:`bench.common.PhaseMeter`) ends the bench before the machine runs out of memory.

Usage::

    python bench/score.py --accounts 100000 --accounts 1000000
    python bench/score.py --accounts 20000 --train-accounts 5000 --train-epochs 1     # a quick check

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    PhaseMeter,
    finite,
    load_average,
)
from bench.ingest import BENCH_HASH_KEY, DATABASE, Progress, connect, graph_counts, server_in, store_size
from gnn.build import build_risk_graph, risk_graph_from_neo4j, tables_from_graph_rows
from gnn.estimator import RiskModel
from gnn.graph_data import RiskGraph
from gnn.runtime import release_memory
from gnn.train import TrainConfig
from graph import schema as s
from graph.local_server import LocalNeo4j
from graph.queries import scoring as q
from graph.settings import Settings
from ingest.load import DEFAULT_BATCH_SIZE as INGEST_BATCH_SIZE
from ingest.load import prepare
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from serving.score import (
    DEFAULT_BATCH_SIZE,
    new_run_id,
    plan_from_scores,
    plan_run,
    touched_since,
    write_scores,
)

AIM_PROPS_PER_S = 50_000
MIB = 1024 * 1024
MODEL_VERSION = "bench-score-model"
#: Properties every written account gets, whatever its label (reasons and prev copies are counted apart).
FIXED_PROPS = (
    *(s.risk_property(t) for t in s.THREATS),
    "risk_score",
    "risk_label",
    "risk_model_version",
    "risk_run_id",
    "risk_scored_at",
)
PREV_PROPS = ("prev_risk_score", "prev_risk_label", "prev_risk_run_id")

BASELINE_WRITE, BASELINE_CHECK = q.PLAIN_SCORE_WRITE, q.ACCOUNTS_OF_RUN


def props_written(frame: pd.DataFrame, prev_present: bool) -> dict[str, int]:
    """Properties a write of ``frame`` sets (see the module docstring)."""
    n = len(frame)
    reasons = int(frame["reasons"].notna().sum())
    fixed = n * len(FIXED_PROPS)
    prev = n * len(PREV_PROPS) if prev_present else 0
    return {"accounts": n, "fixed": fixed, "reasons": reasons, "prev_copies": prev, "total": fixed + reasons + prev}


def train_model(accounts: int, seed: int, epochs: int, folder: Path, progress: Progress) -> tuple[RiskModel, dict]:
    """A model trained offline (no Neo4j) on a small exchange, plain PyTorch."""
    t = time.perf_counter()
    progress.say(f"model: generating {accounts} accounts (seed {seed})")
    generate_exchange(accounts, seed, folder)
    run = prepare(folder, Hasher(BENCH_HASH_KEY))
    tables = tables_from_graph_rows(run.graph_rows)
    graph = build_risk_graph(tables.nodes, tables.rels)
    del run, tables
    progress.say(f"model: training {epochs} epochs on {graph.num_accounts} accounts")
    model = RiskModel(TrainConfig(epochs=epochs)).fit(graph)
    info = {
        "accounts": graph.num_accounts,
        "seed": seed,
        "epochs": epochs,
        "seconds": round(time.perf_counter() - t, 1),
        "choice": model.choice,
    }
    shutil.rmtree(folder, ignore_errors=True)
    return model, info


def nudged(scores: np.ndarray) -> np.ndarray:
    """Every score moved by one ulp towards 0 (or up from 0), so every written value changes."""
    return np.where(scores > 0, np.nextafter(scores, 0.0), np.nextafter(scores, 1.0))


def write_figures(outcome: dict[str, Any], phase: dict[str, Any], counted: dict[str, int]) -> dict[str, Any]:
    seconds = phase["seconds"]
    return {
        **phase,
        "batches": outcome.get("batches"),
        "batches_written": outcome.get("written_now"),
        "properties": counted,
        "properties_per_s": round(counted["total"] / seconds) if seconds else None,
        "accounts_per_s": round(counted["accounts"] / seconds) if seconds else None,
        "neo4j_cpu_us_per_property": round(phase["neo4j_cpu_s"] / counted["total"] * 1e6, 2)
        if phase.get("neo4j_cpu_s") is not None and counted["total"]
        else None,
    }


def with_scores(frame: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """``frame`` with other threat scores (and their maximum as ``score``); labels and reasons kept."""
    out = frame.copy()
    for i, threat in enumerate(s.THREATS):
        out[threat] = scores[:, i]
    out["score"] = scores.max(axis=1)
    return out


def totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Properties, accounts and seconds summed over ``runs``, and the rates they give."""
    seconds = sum(r["seconds"] for r in runs)
    props = sum(r["properties"]["total"] for r in runs)
    accounts = sum(r["properties"]["accounts"] for r in runs)
    cpu = [r["neo4j_cpu_s"] for r in runs if r.get("neo4j_cpu_s") is not None]
    return {
        "runs": len(runs),
        "seconds": round(seconds, 2),
        "properties": props,
        "accounts": accounts,
        "properties_per_s": round(props / seconds),
        "accounts_per_s": round(accounts / seconds),
        "neo4j_cpu_s": round(sum(cpu), 2) if len(cpu) == len(runs) else None,
        "python_cpu_s": round(sum(r["python_cpu_s"] or 0 for r in runs), 2),
    }


def ratios(product: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """Product ÷ baseline: over all rounds together, and per round."""
    p, b = totals(product), totals(baseline)
    return {
        "properties_per_s": round(p["properties_per_s"] / b["properties_per_s"], 3),
        "accounts_per_s": round(p["accounts_per_s"] / b["accounts_per_s"], 3),
        "neo4j_cpu_per_account": round((p["neo4j_cpu_s"] / p["accounts"]) / (b["neo4j_cpu_s"] / b["accounts"]), 3)
        if p["neo4j_cpu_s"] and b["neo4j_cpu_s"]
        else None,
        "properties_per_s_by_round": [
            round(x["properties_per_s"] / y["properties_per_s"], 3) for x, y in zip(product, baseline)
        ],
    }


def baseline_write(driver: neo4j.Driver, frame: pd.DataFrame, run_id: str, model_version: str, batch_size: int) -> int:
    """Write ``frame`` with :data:`BASELINE_WRITE`, ``batch_size`` rows per write transaction."""
    scored_at = datetime.now(UTC)
    props = pd.DataFrame({s.risk_property(t): frame[t] for t in s.THREATS})
    props["risk_score"] = frame["score"]
    props["risk_label"] = frame["label"]
    props["risk_reasons"] = frame["reasons"]
    records = props.to_dict("records")
    keys = frame[s.ACCOUNT.key].tolist()
    written = 0

    def work(tx: neo4j.ManagedTransaction, rows: list[dict[str, Any]]) -> int:
        record = tx.run(BASELINE_WRITE, rows=rows).single()
        return int(record["written"]) if record else 0

    unit = neo4j.unit_of_work(metadata={"app": "ringwatch", "job": "bench-baseline", "run_id": run_id})(work)
    with driver.session(database=DATABASE) as session:
        for lo in range(0, len(frame), batch_size):
            rows = [
                {
                    "key": k,
                    "props": {
                        **p,
                        "risk_model_version": model_version,
                        "risk_run_id": run_id,
                        "risk_scored_at": scored_at,
                    },
                }
                for k, p in zip(keys[lo : lo + batch_size], records[lo : lo + batch_size])
            ]
            n = session.execute_write(unit, rows)
            if n != len(rows):
                raise RuntimeError(f"baseline batch at {lo} matched {n} of {len(rows)} accounts")
            written += n
    return written


def scoring_job(
    driver: neo4j.Driver, server: LocalNeo4j, model_dir: Path, base: Path, meter: PhaseMeter, progress: Progress
) -> dict[str, Any]:
    """The product's ``ringwatch score --snapshot`` on the loaded graph: the job's own per-step seconds."""
    from gnn.snapshot_job import take_snapshot
    from serving.scoring_job import run_scoring

    settings = Settings(
        NEO4J_URI=server.uri,
        NEO4J_PASSWORD=server.password(),
        NEO4J_DATABASE=DATABASE,
        RINGWATCH_DATA_DIR=base / "ringwatch-data",
        RINGWATCH_HASH_KEY=BENCH_HASH_KEY,
    )
    snapshot = base / "snapshot"
    with meter.phase("job_snapshot") as snap_ph:
        progress.say("job: taking the snapshot the job reads")
        taken = take_snapshot(driver, DATABASE, snapshot, source="bench")
        snap_ph["steps_s"] = taken.seconds
    with meter.phase("job") as ph:
        progress.say("job: ringwatch score --snapshot")
        summary = run_scoring(
            settings, driver, model=str(model_dir), snapshot=snapshot, new_run=True, progress=progress
        )
    store = Path(summary.plan) / "features"
    store_bytes = sum(f.stat().st_size for f in store.iterdir()) if store.is_dir() else 0
    shutil.rmtree(snapshot, ignore_errors=True)
    return {
        "snapshot": snap_ph,
        **ph,
        "graph_from": "snapshot" if summary.graph_from != "export" else "export",
        "steps_s": summary.seconds,
        "monitor_steps_s": summary.monitor_seconds,  # inside the job's "monitor" step (the rest: MLflow, alerts, …)
        "outside_steps_s": round(ph["seconds"] - sum(summary.seconds.values()), 2),  # model load, run lookup, …
        "accounts": summary.accounts,
        "written": summary.outcome.get("written"),
        "feature_store_mib": round(store_bytes / MIB, 1),
        "feature_store_bytes_per_account": round(store_bytes / max(summary.accounts, 1)),
    }


def bench_size(
    model: RiskModel, model_dir: Path, accounts: int, base: Path, args: argparse.Namespace, progress: Progress
) -> dict[str, Any]:
    """Load one exchange into a fresh server and run every measured step on it."""
    report: dict[str, Any] = {"accounts_requested": accounts, "load_average_start": load_average()}
    folder = base / "data"
    home = base / "neo4j"
    with server_in(home, args.heap, args.pagecache, progress) as server, PhaseMeter(server.pid_file) as meter:
        with meter.phase("generate") as ph:
            progress.say(f"[{accounts}] generating")
            generate_exchange(accounts, args.seed, folder)
        with meter.phase("prepare_validate") as ph:
            run = prepare(folder, Hasher(BENCH_HASH_KEY), INGEST_BATCH_SIZE, progress)
        events = int(sum(v.read for v in run.validations.values()))
        with connect(server) as driver, meter.phase("bulk_load") as ph:
            from ingest.bulk import bulk_load

            ph["steps_s"] = {
                k: round(v, 2)
                for k, v in bulk_load(run, server, driver, DATABASE, "bench-score-bulk", progress).items()
            }
        del run
        release_memory()
        shutil.rmtree(folder, ignore_errors=True)

        with connect(server) as driver:  # a new driver: the import replaced the store (old bookmarks)
            counts = graph_counts(driver)
            report["graph"] = {"events": events, **counts}
            with meter.phase("export") as ph:
                progress.say(f"[{accounts}] exporting the graph")
                graph = risk_graph_from_neo4j(driver, DATABASE, progress=progress)
            n = graph.num_accounts
            report["accounts"] = n

            # -- scoring: inference + labels + reasons -------------------------------------------------
            with meter.phase("plan_a") as ph:
                progress.say(f"[{accounts}] plan A: scoring {n} accounts")
                run_a, frame_a = plan_run(model, graph, MODEL_VERSION, batch_size=args.batch_size)
            scoring = {**ph, "accounts_per_s": round(n / ph["seconds"])}
            scores_a = frame_a[list(s.THREATS)].to_numpy(dtype=np.float64)
            labels = frame_a["label"].to_numpy(dtype=object)
            scores_b = nudged(scores_a)
            with meter.phase("plan_b_reasons_only") as ph:  # no inference: scores given
                run_b, frame_b = plan_from_scores(
                    graph,
                    scores_b,
                    labels,
                    MODEL_VERSION,
                    thresholds=model.thresholds,
                    train_end=run_a.train_end,
                    hops=model.config.num_layers,
                    batch_size=args.batch_size,
                )
            scoring["reasons_and_rows_s"] = ph["seconds"]
            scoring["inference_and_labels_s"] = round(scoring["seconds"] - ph["seconds"], 2)
            scoring["flagged"] = int((labels != s.CLEAR).sum())
            scoring["labels"] = {str(k): int(v) for k, v in pd.Series(labels).value_counts().items()}
            report["scoring"] = scoring

            # -- write-back ----------------------------------------------------------------------------
            writes: dict[str, Any] = {}
            with meter.phase("write_a") as ph:
                progress.say(f"[{accounts}] write A (fresh graph)")
                out_a = write_scores(driver, DATABASE, run_a, frame_a, progress)
            writes["first_run_fresh_graph"] = write_figures(out_a, ph, props_written(frame_a, prev_present=False))
            scores_now, product_runs, baseline_runs = scores_b, [], []
            for r in range(args.rounds):
                # Alternate the order (product first, then baseline first, …) so drift (page cache warming,
                # checkpoints, the neighbours' load) does not always favour the same side.
                for side in ("product", "baseline") if r % 2 == 0 else ("baseline", "product"):
                    if product_runs or baseline_runs:
                        scores_now = nudged(scores_now)  # every write changes every score
                    frame = frame_b if scores_now is scores_b else with_scores(frame_b, scores_now)
                    if side == "product":
                        run = (
                            run_b
                            if not product_runs
                            else replace(run_b, run_id=new_run_id(), scored_at_ms=int(time.time() * 1000))
                        )
                        with meter.phase(f"write_product_{r}") as ph:
                            progress.say(f"[{accounts}] round {r}: product write-back (run {run.run_id})")
                            out = write_scores(driver, DATABASE, run, frame, progress)
                        figures = write_figures(out, ph, props_written(frame, prev_present=True))
                        figures["label_changes"] = out.get("label_changes")
                        product_runs.append(figures)
                        if r == 0:
                            with meter.phase("rerun_same_run") as ph:
                                rerun = write_scores(driver, DATABASE, run, frame, progress)
                            writes["rerun_same_run"] = {
                                **ph,
                                "run_id": run.run_id,
                                "batches": rerun["batches"],
                                "batches_written": rerun["written_now"],
                                "already_committed": rerun["already_committed"],
                            }
                    else:
                        base_run_id = f"bench-baseline-{uuid.uuid4().hex[:6]}"
                        with meter.phase(f"write_baseline_{r}") as ph:
                            progress.say(f"[{accounts}] round {r}: baseline, plain UNWIND … SET a += row.props")
                            baseline_write(driver, frame, base_run_id, MODEL_VERSION, args.batch_size)
                        check, _, _ = driver.execute_query(BASELINE_CHECK, run_id=base_run_id, database_=DATABASE)
                        if int(check[0]["n"]) != len(frame):
                            raise RuntimeError(f"baseline wrote {check[0]['n']} of {len(frame)} accounts")
                        baseline_runs.append(
                            write_figures(
                                {"batches": -(-len(frame) // args.batch_size)},
                                ph,
                                props_written(frame, prev_present=False),
                            )
                        )
            writes["steady_state_product_runs"] = product_runs
            writes["baseline_plain_unwind_runs"] = baseline_runs
            writes["baseline_cypher"] = BASELINE_WRITE
            writes["product_over_baseline"] = ratios(product_runs, baseline_runs)
            product = totals(product_runs)
            writes["steady_state_product"] = product
            writes["baseline"] = totals(baseline_runs)
            writes["aim_properties_per_s"] = AIM_PROPS_PER_S
            writes["aim_met"] = product["properties_per_s"] >= AIM_PROPS_PER_S
            writes["batch_size"] = args.batch_size
            report["write_back"] = writes

            if args.since_hours > 0:
                report["since"] = since_rescoring(
                    driver, model, graph, nudged(scores_now), labels, args, meter, progress
                )
            if args.job:
                report["job"] = scoring_job(driver, server, model_dir, base, meter, progress)
            report["store"] = store_size(server)
        report["phases"] = meter.phases
        report["peak_mib"] = meter.peaks()
    report["load_average_end"] = load_average()
    return report


def since_rescoring(
    driver: neo4j.Driver,
    model: RiskModel,
    graph: RiskGraph,
    scores: np.ndarray,
    labels: np.ndarray,
    args: argparse.Namespace,
    meter: PhaseMeter,
    progress: Progress,
) -> dict[str, Any]:
    """A ``--since`` run over the last hours of the data (touched query, neighbourhood plan, write)."""
    since_ms = (graph.reference_time - int(args.since_hours * 3600)) * 1000
    progress.say(f"since: accounts touched in the last {args.since_hours} h of the data")
    with meter.phase("since_touched_query") as q_ph:
        touched = touched_since(driver, DATABASE, since_ms)
    with meter.phase("since_plan_neighbourhood") as p_ph:
        run_c, frame_c = plan_from_scores(
            graph,
            scores,
            labels,
            MODEL_VERSION,
            thresholds=model.thresholds,
            train_end=None,
            since_ms=since_ms,
            touched=touched,
            hops=model.config.num_layers,
            batch_size=args.batch_size,
        )
    with meter.phase("since_write") as w_ph:
        out_c = write_scores(driver, DATABASE, run_c, frame_c, progress)
    return {
        "since_hours": args.since_hours,
        "touched_accounts": len(touched),
        "rescored_accounts": len(frame_c),
        "touched_query": q_ph,
        "plan_neighbourhood_and_reasons": p_ph,
        "write": write_figures(out_c, w_ph, props_written(frame_c, prev_present=True)),
        "note": "the product's --since run also repeats the export and the full-graph inference (see plan A)",
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, train the model once, bench every size, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--accounts", type=int, action="append", help="exchange size to score (repeatable; default 100000 and 1000000)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train-accounts", type=int, default=20_000)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--train-seed", type=int, default=11)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="accounts per write")
    parser.add_argument(
        "--rounds", type=int, default=2, help="steady-state product / baseline write pairs, order alternating"
    )
    parser.add_argument("--since-hours", type=float, default=1.0, help="0 skips the --since rescoring")
    parser.add_argument(
        "--no-job", dest="job", action="store_false", help="skip the product's whole job (ringwatch score --snapshot)"
    )
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="2g")
    args = parser.parse_args(argv)
    sizes = args.accounts or [100_000, 1_000_000]
    if any(n < 500 for n in sizes):
        parser.error(f"--accounts must be at least 500, got {sizes}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.batch_size <= 0:
        parser.error(f"--batch-size must be positive, got {args.batch_size}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers through the finally blocks
    progress = Progress()
    base = Path(tempfile.mkdtemp(prefix="ringwatch-bench-score-"))
    report: dict[str, Any] = {"sizes": {}, "heap": args.heap, "pagecache": args.pagecache}
    try:
        model, report["model"] = train_model(
            args.train_accounts, args.train_seed, args.train_epochs, base / "train-data", progress
        )
        model_dir = model.save(base / "model")
        release_memory()
        for n in sizes:
            report["sizes"][str(n)] = bench_size(model, model_dir, n, base / f"size-{n}", args, progress)
            shutil.rmtree(base / f"size-{n}", ignore_errors=True)
            release_memory()
        report["python_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(finite(report), indent=2, default=str))


if __name__ == "__main__":
    main()
