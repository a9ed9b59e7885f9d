"""End-to-end benchmark: generate → ingest (validate + bulk load) → snapshot → train (Ray) → score → rings.

One run, on this machine, in a fresh Neo4j of its own (temporary home, free ports, ``--heap``/``--pagecache``)
and a throwaway ringwatch data folder (snapshots, Ray storage, MLflow registry, models, scoring plans).
Each stage calls what the matching ``ringwatch`` command calls:

- **generate** — :func:`ingest.synthetic.generate_exchange` (``ringwatch generate``);
- **ingest** — ``ringwatch ingest --bulk`` on the empty database: :func:`ingest.load.prepare` (read, validate,
  aggregate), the rejects files, then :func:`ingest.bulk.bulk_load` (import files, ``neo4j-admin import``,
  restart, constraints). ``ingest_with_settings`` itself refuses ``--bulk`` with ``NEO4J_URI`` set, which is how the
  other stages reach this bench's server, so its body is called here piece by piece;
- **snapshot** — :func:`gnn.snapshot_job.snapshot_from_rows` on the bulk load's rows (features, Parquet), as
  ``ringwatch ingest --bulk --snapshot DIR`` does after the load; ``--export-snapshot``:
  :func:`gnn.snapshot_job.take_snapshot` (``ringwatch snapshot``: export, features, Parquet);
- **train** — :func:`gnn.training_job.train_on_snapshot` on that snapshot with Ray Train (1 worker, as the CLI
  default; ``max_failures=0`` so a failure ends the run instead of retrying), ``--epochs`` epochs, tracking
  and promotion into the throwaway registry; then ``ray.shutdown()``, as the command's process would end.
  ``--trainer plain`` trains in this process instead (``ringwatch train --no-ray``);
- **score** — :func:`serving.scoring_job.run_scoring` with the trained model folder and the snapshot
  (``ringwatch score --snapshot``: the snapshot is read instead of an export when the graph has not changed
  since — it has not here —, full-graph inference, reasons, saved plan, write-back);
- **rings** — :func:`serving.rings.run_rings` (the CLI's default grouping policy).

The bench calls each stage's product function in turn and times it from outside; it never wraps or replaces a
product function. Splits inside a stage are the ones the product itself reports: the ingest steps
(``bulk_load``'s), the snapshot's, the training job's (``TrainingSummary.seconds``: snapshot read, GNN epochs,
baseline + calibration, save, test evaluation, tracking) and the scoring job's. Neo4j stays up throughout.

Everything runs as shipped (full-graph inference is the product's layer-wise pass,
:meth:`gnn.model.RiskSAGE.inference`). A memory watchdog ends the bench before the machine runs out of memory.

Figures: seconds and share of the total per stage (with the stages' own breakdowns), the aim (1M accounts
under 15 minutes on 2 cores), and peak resident memory of this process, of its whole tree (Ray's processes
and workers included) and of Neo4j. Product output (tables, progress bars) goes to stderr; one JSON object
goes to stdout.

If a stage fails (or the watchdog ends a Ray worker), the JSON still comes out, with the stages that ran,
``failed`` (stage, error, watchdog note) and every phase's figures.

Usage::

    python bench/e2e.py --accounts 100000 --epochs 2
    python bench/e2e.py --accounts 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    PhaseMeter,
    finite,
    load_average,
)
from bench.ingest import BENCH_HASH_KEY, DATABASE, Progress, connect, graph_counts, server_in, store_size
from gnn.runtime import release_memory
from graph.settings import Settings

AIM_SECONDS = 15 * 60
#: The memory aim: peak resident memory of the Python process tree (Ray's included), with Neo4j up throughout.
AIM_PYTHON_TREE_MIB = 12 * 1024
REPO = str(Path(__file__).resolve().parents[1])
STAGES = ("generate", "ingest", "snapshot", "train", "score", "rings")


def bench_settings(uri: str, password: str, data_dir: Path) -> Settings:
    """Settings for this bench's server and data folder only (never the default ones)."""
    return Settings(
        NEO4J_URI=uri,
        NEO4J_PASSWORD=password,
        NEO4J_DATABASE=DATABASE,
        RINGWATCH_DATA_DIR=data_dir,
        RINGWATCH_HASH_KEY=BENCH_HASH_KEY,
    )


def run(args: argparse.Namespace, base: Path, progress: Progress) -> dict[str, Any]:
    from gnn.export import graph_fingerprint
    from gnn.ray_train import RayConfig
    from gnn.snapshot_job import graph_source, snapshot_from_rows, take_snapshot
    from gnn.train import TrainConfig
    from gnn.training_job import train_on_snapshot
    from ingest.bulk import bulk_load
    from ingest.load import prepare, write_rejects
    from ingest.privacy import Hasher
    from ingest.synthetic import generate_exchange
    from serving.rings import run_rings
    from serving.scoring_job import run_scoring

    folder, data_dir = base / "exchange", base / "ringwatch-data"
    report: dict[str, Any] = {
        "accounts_requested": args.accounts,
        "seed": args.seed,
        "epochs": args.epochs,
        "trainer": args.trainer,
        "snapshot_from": "export" if args.export_snapshot else "bulk load's rows",
        "heap": args.heap,
        "pagecache": args.pagecache,
        "load_average_start": load_average(),
    }
    stages: dict[str, dict[str, Any]] = {}
    with (
        server_in(base / "neo4j", args.heap, args.pagecache, progress) as server,
        PhaseMeter(server.pid_file) as meter,
        contextlib.redirect_stdout(sys.stderr),
    ):
        settings = bench_settings(server.uri, server.password(), data_dir)

        try:
            with meter.phase("generate") as st:
                progress.say(f"generate: {args.accounts} accounts")
                summary = generate_exchange(args.accounts, args.seed, folder)
                st["events"] = int(sum(summary.row_counts.values()))
            stages["generate"] = st

            with meter.phase("ingest") as st:
                t = time.perf_counter()
                prepared = prepare(folder, Hasher(BENCH_HASH_KEY), progress=progress)
                st["prepare_validate_s"] = round(time.perf_counter() - t, 2)
                t = time.perf_counter()
                write_rejects(prepared, data_dir / "rejects" / folder.name)
                st["rejects_s"] = round(time.perf_counter() - t, 2)
                st["accounted_for"] = prepared.accounted_for
                with connect(server) as driver:
                    steps = bulk_load(prepared, server, driver, DATABASE, "bench-e2e-bulk", progress)
                    st["bulk_steps_s"] = {k: round(v, 2) for k, v in steps.items()}
                if args.export_snapshot:
                    del prepared
                release_memory()
            stages["ingest"] = st
            with connect(server) as driver:
                report["graph"] = graph_counts(driver)

            snapshot = data_dir / "snapshots" / "e2e"
            with meter.phase("snapshot") as st:
                source = graph_source(settings)
                if args.export_snapshot:
                    progress.say("snapshot: export")
                    with connect(server) as driver:
                        snap = take_snapshot(driver, DATABASE, snapshot, source=source).as_dict()
                else:  # what `ringwatch ingest --bulk --snapshot DIR` does once the bulk load is done
                    progress.say("snapshot: from the bulk load's rows")
                    with connect(server) as driver:
                        loaded = graph_fingerprint(driver, DATABASE)
                    written = snapshot_from_rows(prepared.graph_rows, snapshot, source=source, fingerprint=loaded)
                    snap = written.as_dict()
                    del prepared
                st["from"] = "export" if args.export_snapshot else "bulk load's rows"
                st["steps_s"] = snap["seconds"]
                release_memory()
            stages["snapshot"] = st
            report["accounts"] = snap["nodes"].get("Account")

            with meter.phase("train") as st:
                progress.say(f"train: {args.trainer}, {args.epochs} epochs")
                config = TrainConfig(epochs=args.epochs, seed=args.seed)
                # max_failures=0: a worker the memory watchdog ended should fail the run, not start again.
                ray_config = (
                    RayConfig(num_workers=args.workers, storage_path=data_dir / "ray", max_failures=0)
                    if args.trainer == "ray"
                    else None
                )
                trained = train_on_snapshot(settings, snapshot, config, ray_config).as_dict()
                t = time.perf_counter()
                import ray

                ray.shutdown()  # as the command's process would end
                st["ray_shutdown_s"] = round(time.perf_counter() - t, 2)
                model_spec = json.loads((Path(trained["model_dir"]) / "model.json").read_text(encoding="utf-8"))
                st["steps_s"] = trained["seconds"]  # the training job's own split
                st["epoch_s"] = [round(h["seconds"], 1) for h in model_spec["history"]]
                st["val_auprc_mean"] = [round(h["val_auprc_mean"], 4) for h in model_spec["history"]]
                st["choice"] = trained["choice"]
                st["test_auroc"] = {t: round(m["auroc"], 3) for t, m in trained["test"]["threats"].items()}
                st["test_auprc"] = {t: round(m["auprc"], 3) for t, m in trained["test"]["threats"].items()}
                release_memory()
            stages["train"] = st

            with meter.phase("score") as st:
                progress.say("score")
                with connect(server) as driver:
                    scored = run_scoring(settings, driver, model=trained["model_dir"], snapshot=snapshot).as_dict()
                st["steps_s"] = scored["seconds"]  # the scoring job's own split
                st["graph_from"] = "snapshot" if scored["graph_from"] != "export" else "export"
                st["accounts_written"] = scored["written"]
                st["batches"] = scored["batches"]
                st["flagged"] = scored["flagged"]
                release_memory()
            stages["score"] = st

            with meter.phase("rings") as st:
                progress.say("rings")
                with connect(server) as driver:
                    rings = run_rings(driver, DATABASE)
                st.update({k: rings[k] for k in ("flagged_accounts", "shared_identifiers", "rings", "ring_members")})
                st["by_kind"] = rings["by_kind"]
            stages["rings"] = st
        except Exception as e:  # noqa: BLE001 — report what ran, and where and why it stopped
            failed = next((n for n in STAGES if n not in stages), "?")
            report["failed"] = {
                "stage": failed,
                "error": f"{type(e).__name__}: {e}"[:1000],
                "watchdog": meter.tripped,
                "seconds_in_stage": meter.phases.get(failed, {}).get("seconds"),
            }
            progress.say(f"stage {failed} failed: {report['failed']['error'][:300]}")
        report["store"] = store_size(server)
        report["peak_mib"] = meter.peaks()

    done = [name for name in STAGES if name in stages]
    total = sum(stages[name]["seconds"] for name in done)
    for name in done:
        stages[name]["share"] = round(stages[name]["seconds"] / total, 3)
    report["stages"] = stages
    report["phases_if_failed"] = meter.phases if "failed" in report else None
    report["total_s"] = round(total, 1)
    report["total_min"] = round(total / 60, 1)
    report["aim_s"] = AIM_SECONDS
    report["aim_met"] = total <= AIM_SECONDS and "failed" not in report
    report["memory_aim_python_tree_mib"] = AIM_PYTHON_TREE_MIB
    report["memory_aim_met"] = report["peak_mib"]["python_tree_mib"] <= AIM_PYTHON_TREE_MIB
    report["dominant_stage"] = max(done, key=lambda n: stages[n]["seconds"]) if done else None
    report["load_average_end"] = load_average()
    return report


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the pipeline once, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (Ray Train)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers")
    parser.add_argument(
        "--trainer",
        default="ray",
        choices=["ray", "plain"],
        help="Ray Train (1 worker, as the CLI default) or plain PyTorch in this process (--no-ray)",
    )
    parser.add_argument(
        "--export-snapshot",
        action="store_true",
        help="take the snapshot by exporting the loaded graph (`ringwatch snapshot`) instead of from the bulk "
        "load's rows (`ringwatch ingest --bulk --snapshot`)",
    )
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="2g")
    args = parser.parse_args(argv)
    if args.accounts < 500:
        parser.error(f"--accounts must be at least 500, got {args.accounts}")
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server through the finally blocks
    progress = Progress()
    base = Path(tempfile.mkdtemp(prefix="ringwatch-bench-e2e-"))
    try:
        report = run(args, base, progress)
    finally:
        try:
            import ray

            ray.shutdown()
        except Exception:  # noqa: BLE001 — cleanup only
            pass
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(finite(report), indent=2, default=str))


if __name__ == "__main__":
    main()
