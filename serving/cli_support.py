"""What several commands share: opening the configured graph (starting the local server when needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import neo4j

from graph.driver import build_driver
from graph.local_server import LocalNeo4j
from graph.settings import Settings
from serving.console import console


@contextmanager
def open_graph(settings: Settings, start: bool = True) -> Iterator[neo4j.Driver]:
    """A driver for the configured server; starts the local one first when needed and allowed."""
    if not settings.uses_external_server and start:
        server = LocalNeo4j.from_settings(settings, on_status=lambda m: console.print(f"[dim]{m}[/dim]"))
        if not server.status().running:
            server.start()
    driver = build_driver(settings)
    try:
        yield driver
    finally:
        driver.close()


