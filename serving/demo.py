"""``ringwatch demo``: the end-to-end job on a generated exchange, with a summary of where to look."""

from __future__ import annotations

from pathlib import Path

from rich.panel import Panel

from graph.local_server import LocalNeo4j
from graph.queries.inspect import graph_counts
from graph.settings import Settings
from ingest.synthetic import generate_exchange
from serving.cli_support import open_graph
from serving.console import console
from serving.ingest_command import run_ingest

EXAMPLE_QUERY = (
    "MATCH (d:Device)<-[:USED_DEVICE]-(a:Account)\n"
    "WITH d, collect(a) AS accounts WHERE size(accounts) >= 5\n"
    "RETURN d, accounts LIMIT 25"
)


def run_demo(settings: Settings, accounts: int, seed: int, out: Path) -> None:
    """Start Neo4j, generate an exchange, ingest it, print a summary and where to look."""
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
    lines = [
        "[bold]graph[/bold]: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
        f"[bold]data quality[/bold]: {out / 'rejects' / 'quality.json'} (rejected rows next to it)",
        f"[bold]truth of the planted rings[/bold]: {exchange / 'truth.csv'} (never ingested)",
    ]
    if not settings.uses_external_server:
        st = LocalNeo4j.from_settings(settings).status()
        lines.append(f"[bold]Neo4j Browser[/bold]: {st.browser_url}  (connect to {st.bolt_uri}, user neo4j, "
                     f"password in {st.password_file or 'NEO4J_PASSWORD'})")
    else:
        lines.append(f"[bold]Neo4j[/bold]: {settings.neo4j_uri}")
    lines.append("[bold]try in Browser[/bold]:\n" + EXAMPLE_QUERY)
    console.print(Panel("\n".join(lines), title=f"ringwatch demo — run {report['run_id']}", expand=False))
