"""Test fixtures. Integration tests share one throwaway Neo4j server, started here for the session.

The server lives in a temporary folder on free ports; it is stopped when the session ends. Its jars come
from the usual cache (``RINGWATCH_CACHE_DIR`` or ``~/.cache/ringwatch``), downloaded once.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import neo4j
import pytest

from graph.settings import Settings
from ingest.privacy import Hasher

TEST_HASH_KEY = "test-hash-key-not-a-secret-0123456789"


#: Test files that start Neo4j servers of their own (besides the shared one).
OWN_SERVER_FILES = frozenset({"test_local_server.py", "test_api_degraded.py"})
#: Test files that train a model at full size or run the whole job (``-m "not slow"`` leaves them out).
SLOW_FILES = frozenset({"test_demo.py", "test_model_quality.py", "test_notebooks.py", "test_ray_train.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by rule, in one place: ``integration`` for everything under ``tests/integration``, ``neo4j`` for
    every test that uses a server (the shared one, or its own: :data:`OWN_SERVER_FILES`), ``slow`` for the files
    in :data:`SLOW_FILES`."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
        if "neo4j_server" in getattr(item, "fixturenames", ()) or item.path.name in OWN_SERVER_FILES:
            item.add_marker(pytest.mark.neo4j)
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


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


# Anything a terminal would act on: C0/C1 controls (but newline), DEL, bidirectional overrides.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture()
def run_cli(capsys, monkeypatch) -> Callable[..., tuple[int, str, str]]:
    """``ringwatch ARGS`` in this process: (exit code, stdout, stderr). Fails the test on a traceback or on a
    control character reaching the terminal."""
    from serving import cli

    monkeypatch.setenv("COLUMNS", "200")
    umask = os.umask(0o022)
    os.umask(umask)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["ringwatch", *args])
        code = 0
        try:
            cli.main()
        except SystemExit as e:
            code = int(e.code or 0)
        finally:
            os.umask(umask)  # main() makes the process owner-only; give the test session its umask back
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        found = RAW_CONTROL.search(out + err)
        assert found is None, repr(found)
        return code, out, err

    return run


def generated_snapshot(tmp: Path, accounts: int, seed: int = 3) -> Path:
    """Generate an exchange of ``accounts`` under ``tmp`` and write its snapshot (no database); its folder."""
    from gnn.build import tables_from_graph_rows
    from gnn.snapshot import write_snapshot
    from ingest.load import prepare
    from ingest.synthetic import generate_exchange

    generate_exchange(accounts, seed, tmp / "exchange")
    run = prepare(tmp / "exchange", Hasher(TEST_HASH_KEY))
    write_snapshot(tables_from_graph_rows(run.graph_rows), tmp / "snapshot", source="test")
    return tmp / "snapshot"


@pytest.fixture(scope="session")
def small_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of a generated 800-account exchange, built without a database (for fast model tests)."""
    return generated_snapshot(tmp_path_factory.mktemp("small-snapshot"), 800)
