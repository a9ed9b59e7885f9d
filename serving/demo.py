"""``ringwatch demo``: the end-to-end job on a generated exchange, with a summary of where to look."""

from __future__ import annotations

from pathlib import Path

from rich.panel import Panel

from graph.local_server import LocalNeo4j
from graph.queries.inspect import EXAMPLE_SHARED_DEVICES, graph_counts
from graph.settings import Settings
from ingest.synthetic import generate_exchange
from serving.cli_support import open_graph
from serving.console import console
from serving.ingest_command import run_ingest
from serving.snapshot_command import run_snapshot
from serving.train_command import print_evaluation, run_evaluate, run_train
from gnn.ray_train import RayConfig
from gnn.tracking import tracking_uri
from gnn.train import TrainConfig



def run_demo(settings: Settings, accounts: int, seed: int, out: Path, epochs: int = 15) -> None:
    """Start Neo4j, generate, ingest, train, evaluate against the truth; print a summary and where to look."""
    if not settings.uses_external_server:
        server = LocalNeo4j.from_settings(settings, on_status=lambda m: console.print(f"[dim]{m}[/dim]"))
        server.start()
    exchange = out / "exchange"
    with console.status(f"generating an exchange of {accounts:,} accounts…") as status:
        summary = generate_exchange(accounts, seed, exchange, progress=lambda m: status.update(m))
    console.print(f"generated {exchange} ({summary.seconds:.1f} s): planted rings "
                  + ", ".join(f"{k} {v}" for k, v in summary.rings.items()))
    report = run_ingest(settings, exchange, out / "rejects", demo=True)
    with open_graph(settings) as driver:
        counts = graph_counts(driver, settings.neo4j_database)
    snapshot = out / "snapshot"
    run_snapshot(settings, snapshot, overwrite=True)
    ray = RayConfig(num_workers=1, storage_path=settings.data_dir / "ray")
    training = run_train(settings, snapshot, TrainConfig(epochs=epochs), ray)
    evaluation = run_evaluate(settings, training["model_dir"], snapshot, exchange / "truth.csv", out / "evaluation")
    print_evaluation(evaluation)
    lines = [
        "[bold]graph[/bold]: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
        f"[bold]data quality[/bold]: {out / 'rejects' / 'quality.json'} (rejected rows next to it)",
        f"[bold]truth of the planted rings[/bold]: {exchange / 'truth.csv'} (never ingested)",
        f"[bold]model[/bold]: {training['model_dir']} ({training.get('model_version', 'untracked')}); "
        f"MLflow store: {tracking_uri(settings)}",
        f"[bold]evaluation[/bold]: {out / 'evaluation' / 'metrics.json'} and pr_curves.png",
    ]
    if not settings.uses_external_server:
        st = LocalNeo4j.from_settings(settings).status()
        lines.append(f"[bold]Neo4j Browser[/bold]: {st.browser_url}  (connect to {st.bolt_uri}, user neo4j, "
                     f"password in {st.password_file or 'NEO4J_PASSWORD'})")
    else:
        lines.append(f"[bold]Neo4j[/bold]: {settings.neo4j_uri}")
    lines.append("[bold]try in Browser[/bold]:\n" + EXAMPLE_SHARED_DEVICES)
    console.print(Panel("\n".join(lines), title=f"ringwatch demo — run {report['run_id']}", expand=False))
