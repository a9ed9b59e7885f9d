"""``ringwatch demo``: the whole job on a generated exchange, with a summary of where to look.

Start Neo4j → generate → ingest → snapshot → train (Ray Train) → score and write back → rings → report →
evaluate the written output against the truth file. Every step is the same code the individual commands
run; the demo only chains them and prints where each result is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.panel import Panel

from graph.local_server import LocalNeo4j
from graph.queries.inspect import EXAMPLE_SHARED_DEVICES, count_nodes, graph_counts, wipe_database
from graph.settings import Settings
from gnn.ray_train import RayConfig
from gnn.tracking import tracking_uri
from gnn.train import TrainConfig
from ingest.synthetic import generate_exchange
from serving.cli_support import open_graph
from serving.console import console
from serving.ingest_command import run_ingest
from serving.output_evaluation import evaluate_output
from serving.report import build_report
from serving.rings import run_rings
from serving.rings_command import print_rings
from serving.score_command import run_score
from serving.snapshot_command import run_snapshot
from serving.train_command import print_evaluation, run_train


def run_demo(settings: Settings, accounts: int, seed: int, out: Path, epochs: int = 15,
             reset: bool = False) -> dict[str, Any]:
    """Run every stage on a generated exchange; print a summary and where to look. Returns the figures."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 1)
        clock = now

    if not settings.uses_external_server:
        server = LocalNeo4j.from_settings(settings, on_status=lambda m: console.print(f"[dim]{m}[/dim]"))
        server.start()
    with open_graph(settings) as driver:
        existing = count_nodes(driver, settings.neo4j_database)
        if existing and reset:
            with console.status(f"emptying the database ({existing:,} nodes)…"):
                wipe_database(driver, settings.neo4j_database)
        elif existing:
            console.print(f"[yellow]the database already holds {existing:,} nodes; the demo adds to them "
                          "(--reset starts from an empty database)[/yellow]")
    lap("start")
    exchange = out / "exchange"
    with console.status(f"generating an exchange of {accounts:,} accounts…") as status:
        summary = generate_exchange(accounts, seed, exchange, progress=lambda m: status.update(m))
    console.print(f"generated {exchange} ({summary.seconds:.1f} s): planted rings "
                  + ", ".join(f"{k} {v}" for k, v in summary.rings.items()))
    lap("generate")
    report = run_ingest(settings, exchange, out / "rejects", demo=True)
    lap("ingest")
    snapshot = out / "snapshot"
    run_snapshot(settings, snapshot, overwrite=True)
    lap("snapshot")
    ray = RayConfig(num_workers=1, storage_path=settings.data_dir / "ray")
    training = run_train(settings, snapshot, TrainConfig(epochs=epochs), ray)
    lap("train")
    # Score with the model just trained (the registry's champion may be an older, better one).
    scoring = run_score(settings, training["model_dir"], new_run=True)
    lap("score")
    with open_graph(settings) as driver:
        with console.status("grouping flagged accounts into rings…"):
            rings = run_rings(driver, settings.neo4j_database)
        print_rings(rings)
        lap("rings")
        truth = pd.read_csv(exchange / "truth.csv", dtype=str, keep_default_na=False)
        evaluation = evaluate_output(driver, settings.neo4j_database, truth, out / "evaluation")
        print_evaluation(evaluation)
        lap("evaluate")
        report_path = build_report(driver, settings.neo4j_database, out / "report", top=20,
                                   metrics_file=out / "evaluation" / "metrics.json")
        counts = graph_counts(driver, settings.neo4j_database)
    lap("report")
    figures = {"accounts": accounts, "seed": seed, "scoring_run": scoring["run_id"], "rings": rings["rings"],
               "ring_recall": evaluation["rings"], "account_fpr": evaluation["overall"]["account_fpr"],
               "threats": {t: {k: m[k] for k in ("auroc", "auprc", "recall_at_k", "precision", "recall", "fpr")}
                           for t, m in evaluation["threats"].items()},
               "seconds": timings, "report": str(report_path)}
    (out / "demo.json").write_text(json.dumps(figures, indent=1, default=float) + "\n", encoding="utf-8")
    _print_summary(settings, out, counts, report, training, scoring, rings, evaluation, report_path, timings)
    return figures


def _print_summary(settings: Settings, out: Path, counts: dict[str, int], ingest: dict[str, Any],
                   training: dict[str, Any], scoring: dict[str, Any], rings: dict[str, Any],
                   evaluation: dict[str, Any], report_path: Path, timings: dict[str, float]) -> None:
    r = evaluation["rings"]
    top = rings["top"][0]["ring_id"] if rings["top"] else None
    lines = [
        f"[bold]report[/bold]: {report_path}  ← open this in a browser",
        "[bold]graph[/bold]: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
        f"[bold]data quality[/bold]: {out / 'rejects' / 'quality.json'} (rejected rows next to it)",
        f"[bold]model[/bold]: {training['model_dir']} ({training.get('model_version', 'untracked')}); "
        f"MLflow store: {tracking_uri(settings)}",
        f"[bold]scoring run[/bold] {scoring['run_id']}: {scoring['written']:,} accounts written, "
        f"{scoring['flagged']:,} flagged ({scoring['policy']}); [bold]rings[/bold]: {rings['rings']} "
        f"({rings['ring_members']} members, {rings['admitted']} flagged as ring members)",
        f"[bold]against the truth[/bold] ({out / 'evaluation' / 'metrics.json'}): ring recall {r['recall']:.2f} "
        f"({r['recovered']}/{r['planted']} planted rings; "
        + ", ".join(f"{k} {v['recovered']}/{v['planted']}" for k, v in r["by_kind"].items())
        + f"; with no labelled member {r['unlabelled_rings']['recovered']}/{r['unlabelled_rings']['planted']}), "
        f"account FPR {evaluation['overall']['account_fpr']:.4f}",
        "[bold]stage seconds[/bold]: " + ", ".join(f"{k} {v}" for k, v in timings.items()),
    ]
    if not settings.uses_external_server:
        st = LocalNeo4j.from_settings(settings).status()
        lines.append(f"[bold]Neo4j Browser[/bold]: {st.browser_url}  (connect to {st.bolt_uri}, user neo4j, "
                     f"password in {st.password_file or 'NEO4J_PASSWORD'})")
    else:
        lines.append(f"[bold]Neo4j[/bold]: {settings.neo4j_uri}")
    if top:
        lines.append(f"[bold]look at a ring[/bold]: ringwatch investigate {rings['top'][0]['members'][0]}   "
                     f"(ring {top})")
    lines.append("[bold]investigator queries[/bold]: graph/queries/investigator_pack.cypher "
                 "(`ringwatch query-pack --out DIR` for Browser favourites)")
    lines.append("[bold]try in Browser[/bold]:\n" + EXAMPLE_SHARED_DEVICES)
    console.print(Panel("\n".join(lines), title=f"ringwatch demo — ingest run {ingest['run_id']}", expand=False))
