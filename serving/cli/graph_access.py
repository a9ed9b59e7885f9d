"""Opening the configured graph for a command: the local server is started first when needed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import neo4j
from rich.console import Console

from graph.driver import build_driver
from graph.local_server import LocalNeo4j
from graph.settings import Settings
from serving.cli.console import console, safe


@contextmanager
def open_graph(settings: Settings, start: bool = True, out: Console | None = None) -> Iterator[neo4j.Driver]:
    """A driver for the configured server; starts the local one first when needed and allowed (saying so on
    ``out``, default standard output)."""
    if not settings.uses_external_server and start:
        say = out or console
        server = LocalNeo4j.from_settings(settings, on_status=lambda m: say.print(f"[dim]{safe(m)}[/dim]"))
        if not server.status().running:
            server.start()
    driver = build_driver(settings)
    try:
        yield driver
    finally:
        driver.close()
