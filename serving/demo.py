"""The demo job (``ringwatch demo``): the whole job on a generated exchange, and where to look afterwards.

Generate → ingest → snapshot → train (Ray Train) → score and write back → rings → evaluate the written output
against the truth file → report. Every stage is the same function its own command runs; the demo only chains
them, hands each stage's result to ``on_stage`` (the command line prints it), and says where each result is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import neo4j
import pandas as pd

from gnn.ray_train import RayConfig
from gnn.snapshot_job import graph_source, take_snapshot
from gnn.tracking import tracking_uri
from gnn.train import TrainConfig
from gnn.training_job import train_on_snapshot
from graph.local_server import LocalNeo4j
from graph.logs import logger
from graph.queries.inspect import EXAMPLE_SHARED_DEVICES, count_nodes, graph_counts, wipe_database
from graph.runs import Progress
from graph.settings import Settings
from ingest.job import ingest_with_settings
from ingest.synthetic import generate_exchange
from serving.output_evaluation import evaluate_output
from serving.report import build_report
from serving.rings import run_rings
from serving.scoring_job import run_scoring

log = logger(__name__)

#: ``ringwatch demo``'s defaults: a 20k-account exchange, seed 7, at most 15 epochs (the figures in the README).
DEMO_ACCOUNTS: Final = 20_000
DEMO_SEED: Final = 7
DEMO_EPOCHS: Final = 15

#: Called with each stage's name and result as the demo goes: ``on_stage("ingest", IngestReport)``.
OnStage = Callable[[str, Any], None]


@dataclass
class DemoResult:
    """The demo's figures (also written to ``demo.json``) and where to look, as ``(what, where)`` lines."""

    figures: dict[str, Any]
    where: list[tuple[str, str]]
    ingest_run: str


def run_demo(
    settings: Settings,
    driver: neo4j.Driver,
    accounts: int,
    seed: int,
    out: Path,
    epochs: int = DEMO_EPOCHS,
    reset: bool = False,
    progress: Progress | None = None,
    on_stage: OnStage | None = None,
) -> DemoResult:
    """Run every stage on a generated exchange of ``accounts`` accounts into the graph ``driver`` reaches.

    Args:
        settings: the configured graph, data folder and registry.
        driver: an open driver (the caller owns it).
        accounts: accounts in the generated exchange (at least ``ingest.synthetic.MIN_ACCOUNTS``).
        seed: the generator's seed.
        out: the demo's working folder (exchange, rejects, snapshot, evaluation, report, ``demo.json``).
        epochs: training epochs at most (early stopping may end sooner).
        reset: empty the database first; otherwise the demo adds to what is there.
        progress: called as ``progress(stage, done, total)`` within long stages.
        on_stage: called with each stage's name and result when it ends.

    Returns:
        The figures and where to look.
    """
    stage = on_stage or (lambda name, result: None)
    database = settings.neo4j_database
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str, result: Any = None) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 1)
        clock = now
        stage(name, result)

    existing = count_nodes(driver, database)
    if existing and reset:
        wipe_database(driver, database)
    elif existing:
        log.warning(
            "the database already holds %d nodes; the demo adds to them (--reset starts from an empty database)",
            existing,
        )
    lap("start", {"emptied": existing if reset else 0, "existing": 0 if reset else existing})
    exchange = out / "exchange"
    generated = generate_exchange(
        accounts, seed, exchange, progress=(lambda m: progress(m, 0, 0)) if progress else None
    )
    lap("generate", generated)
    ingested = ingest_with_settings(settings, driver, exchange, out / "rejects", demo=True, progress=progress)
    lap("ingest", ingested)
    snapshot = out / "snapshot"
    lap(
        "snapshot",
        take_snapshot(driver, database, snapshot, source=graph_source(settings), overwrite=True, progress=progress),
    )
    ray = RayConfig(num_workers=1, storage_path=settings.data_dir / "ray", address=settings.ray_address)
    training = train_on_snapshot(settings, snapshot, TrainConfig(epochs=epochs), ray)
    lap("train", training)
    # Score with the model just trained (the registry's champion may be an older, better one).
    scoring = run_scoring(settings, driver, training.model_dir, new_run=True, progress=progress, snapshot=snapshot)
    lap("score", scoring)
    rings = run_rings(driver, database)
    lap("rings", rings)
    truth = pd.read_csv(exchange / "truth.csv", dtype=str, keep_default_na=False)
    evaluation = evaluate_output(driver, database, truth, out / "evaluation")
    lap("evaluate", evaluation)
    report_path = build_report(
        driver, database, out / "report", top=20, metrics_file=out / "evaluation" / "metrics.json"
    )
    counts = graph_counts(driver, database)
    lap("report", report_path)
    figures = {
        "accounts": accounts,
        "seed": seed,
        "scoring_run": scoring.run_id,
        "rings": rings["rings"],
        "ring_recall": evaluation["rings"],
        "account_fpr": evaluation["overall"]["account_fpr"],
        "threats": {
            t: {k: m[k] for k in ("auroc", "auprc", "recall_at_k", "precision", "recall", "fpr")}
            for t, m in evaluation["threats"].items()
        },
        "seconds": timings,
        "report": str(report_path),
    }
    (out / "demo.json").write_text(json.dumps(figures, indent=1, default=float) + "\n", encoding="utf-8")
    where = _where_to_look(
        settings,
        out,
        counts,
        training.model_dir,
        training.model_version,
        scoring.as_dict(),
        rings,
        evaluation,
        report_path,
        timings,
    )
    return DemoResult(figures, where, ingested.run_id)


def _where_to_look(
    settings: Settings,
    out: Path,
    counts: dict[str, int],
    model_dir: str,
    model_version: str | None,
    scoring: dict[str, Any],
    rings: dict[str, Any],
    evaluation: dict[str, Any],
    report_path: Path,
    timings: dict[str, float],
) -> list[tuple[str, str]]:
    r = evaluation["rings"]
    lines = [
        ("report", f"{report_path}  ← open this in a browser"),
        ("graph", ", ".join(f"{k} {v:,}" for k, v in counts.items())),
        ("data quality", f"{out / 'rejects' / 'quality.json'} (rejected rows next to it)"),
        ("model", f"{model_dir} ({model_version or 'untracked'}); MLflow store: {tracking_uri(settings)}"),
        (
            "scoring run",
            f"{scoring['run_id']}: {scoring['written']:,} accounts written, {scoring['flagged']:,} "
            f"flagged ({scoring['policy']}); rings: {rings['rings']} ({rings['ring_members']} members, "
            f"{rings['admitted']} flagged as ring members)",
        ),
        (
            "against the truth",
            f"({out / 'evaluation' / 'metrics.json'}): ring recall {r['recall']:.2f} "
            f"({r['recovered']}/{r['planted']} planted rings; "
            + ", ".join(f"{k} {v['recovered']}/{v['planted']}" for k, v in r["by_kind"].items())
            + f"; with no labelled member {r['unlabelled_rings']['recovered']}/"
            f"{r['unlabelled_rings']['planted']}), account FPR "
            f"{evaluation['overall']['account_fpr']:.4f}",
        ),
        ("stage seconds", ", ".join(f"{k} {v}" for k, v in timings.items())),
    ]
    if not settings.uses_external_server:
        st = LocalNeo4j.from_settings(settings).status()
        lines.append(
            (
                "Neo4j Browser",
                f"{st.browser_url}  (connect to {st.bolt_uri}, user neo4j, password in "
                f"{st.password_file or 'NEO4J_PASSWORD'})",
            )
        )
    else:
        lines.append(("Neo4j", str(settings.neo4j_uri)))
    if rings["top"]:
        lines.append(
            (
                "look at a ring",
                f"ringwatch investigate {rings['top'][0]['members'][0]}   (ring {rings['top'][0]['ring_id']})",
            )
        )
    lines.append(
        (
            "investigator queries",
            "graph/queries/investigator_pack.cypher (`ringwatch query-pack --out DIR` for Browser favourites)",
        )
    )
    # On one line: the panel shows control characters (a line break too) as escapes, and Browser takes it as is.
    lines.append(("try in Browser", " ".join(EXAMPLE_SHARED_DEVICES.split())))
    return lines
