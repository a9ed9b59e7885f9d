"""Test fixtures. Integration tests share one throwaway Neo4j server, started here for the session.

The server lives in a temporary folder on free ports; it is stopped when the session ends. Its jars come
from the usual cache (``RINGWATCH_CACHE_DIR`` or ``~/.cache/ringwatch``), downloaded once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from graph.settings import Settings
from ingest.privacy import Hasher

TEST_HASH_KEY = "test-hash-key-not-a-secret-0123456789"


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory):
    from graph.local_server import start_throwaway

    cache = Path(os.environ.get("RINGWATCH_CACHE_DIR", Path.home() / ".cache" / "ringwatch"))
    server = start_throwaway(tmp_path_factory.mktemp("neo4j-server"), cache, timeout=600)
    yield server
    server.stop()


def connect(server) -> neo4j.Driver:
    """A new driver for the test server (a bulk import replaces the store, which outdates old bookmarks)."""
    drv = neo4j.GraphDatabase.driver(server.uri, auth=(server.username, server.password()))
    drv.verify_connectivity()
    return drv


@pytest.fixture()
def driver(neo4j_server) -> Iterator[neo4j.Driver]:
    drv = connect(neo4j_server)
    yield drv
    drv.close()


@pytest.fixture()
def graph_env(neo4j_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Environment that points ringwatch (settings, CLI subprocesses) at the test server."""
    env = {
        "NEO4J_URI": neo4j_server.uri,
        "NEO4J_USERNAME": neo4j_server.username,
        "NEO4J_PASSWORD": neo4j_server.password(),
        "NEO4J_DATABASE": "neo4j",
        "RINGWATCH_HASH_KEY": TEST_HASH_KEY,
        "RINGWATCH_DATA_DIR": str(tmp_path / "data"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture()
def settings(graph_env) -> Settings:
    return Settings()


@pytest.fixture()
def empty_graph(driver: neo4j.Driver) -> neo4j.Driver:
    """The shared database emptied (constraints kept) before the test."""
    wipe(driver)
    return driver


def wipe(driver: neo4j.Driver) -> None:
    from graph.queries.inspect import wipe_database

    wipe_database(driver, "neo4j")


@pytest.fixture()
def hasher() -> Hasher:
    return Hasher(TEST_HASH_KEY)
