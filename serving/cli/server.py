"""``ringwatch neo4j start | stop | status``: the local Neo4j server."""

from __future__ import annotations

from typing import Annotated

import typer

from graph.errors import RingwatchError
from graph.local_server import START_TIMEOUT_S, LocalNeo4j
from graph.queries.inspect import server_components
from graph.settings import Settings, load_settings
from serving.cli.console import console, plain, safe
from serving.cli.graph_access import open_graph


def start(
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait for Bolt to answer.")] = START_TIMEOUT_S,
) -> None:
    """Install (first run only) and start the local Neo4j server on 127.0.0.1."""
    settings = load_settings()
    _refuse_external(settings, "start")
    server = LocalNeo4j.from_settings(settings, on_status=lambda m: console.print(f"[dim]{safe(m)}[/dim]"))
    server.start(timeout=timeout)  # installs the jars first when needed
    _print_status(server)


def stop() -> None:
    """Stop the local Neo4j server (clean shutdown)."""
    settings = load_settings()
    _refuse_external(settings, "stop")
    if LocalNeo4j.from_settings(settings).stop():
        console.print("Neo4j stopped.")
    else:
        console.print("Neo4j was not running; nothing to stop.")


def status() -> None:
    """Say whether the local server runs (exit code 3 when it does not), which version, where, and where its
    password is."""
    settings = load_settings()
    if settings.uses_external_server:
        with open_graph(settings, start=False) as driver:
            records = server_components(driver)
        for r in records:
            console.print(
                f"external server {settings.neo4j_uri}: {r['name']} {r['version']} ({r['edition']})",
                markup=False,
                highlight=False,
            )
        return
    _print_status(LocalNeo4j.from_settings(settings))


def _print_status(server: LocalNeo4j) -> None:
    st = server.status()
    console.print("\n".join(plain(line) for line in st.describe().splitlines()), highlight=False, markup=False)
    if not st.running:
        raise typer.Exit(3)


def _refuse_external(settings: Settings, verb: str) -> None:
    if settings.uses_external_server:
        raise RingwatchError(f"NEO4J_URI is set ({settings.neo4j_uri}); ringwatch does not {verb} a server then")
