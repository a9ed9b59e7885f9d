"""The locally managed Neo4j, for real: a throwaway server in a temporary folder, on free ports.

The jars come from the project's cache folder (``RINGWATCH_CACHE_DIR``, default ``~/.cache/ringwatch``), so
only the first run on a machine downloads them (Java 17+ and Maven needed).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import neo4j
import psutil
import pytest
from neo4j.exceptions import AuthError

from graph.errors import Neo4jServerError
from graph.local_server import LocalNeo4j, free_ports, start_throwaway
from graph.neo4j_conf import FAST_SHUTDOWN_CONF
from graph.settings import Settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j]:
    started = start_throwaway(tmp_path_factory.mktemp("local-neo4j"), Settings().cache_dir)
    try:
        yield started
    finally:
        started.stop()


def _return_one(uri: str, password: str) -> int:
    with neo4j.GraphDatabase.driver(uri, auth=("neo4j", password)) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one")
    return int(records[0]["one"])


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8")


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not ipaddress.ip_address(address.address).is_loopback:
                return str(address.address)
    return None


def _processes_of(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and f"--home-dir={home}" in cmdline:
            found.append(proc)
    return found


def test_bolt_answers_with_the_generated_password(server: LocalNeo4j) -> None:
    assert server.uri == f"bolt://127.0.0.1:{server.bolt_port}"
    assert _return_one(server.uri, server.password()) == 1


def test_wrong_password_is_refused(server: LocalNeo4j) -> None:
    with pytest.raises(AuthError):
        _return_one(server.uri, "wrong-password-123")


def test_password_file_is_private(server: LocalNeo4j) -> None:
    mode = stat.S_IMODE(server.password_file.stat().st_mode)
    assert mode == 0o600
    assert server.password_file.read_text().strip() == server.password()
    assert len(server.password()) >= 32


def test_browser_is_served_and_points_at_this_bolt_port(server: LocalNeo4j) -> None:
    code, content_type, body = _get(server.browser_url)
    assert code == 200
    assert content_type.startswith("text/html")
    assert "<title>Neo4j Browser</title>" in body
    # Browser learns where Bolt is from the discovery document; it must name our port, not 7687.
    _, _, discovery = _get(f"http://127.0.0.1:{server.http_port}/")
    assert json.loads(discovery)["bolt_direct"] == server.uri


def test_status_reports_running_version_and_where_the_password_is(server: LocalNeo4j) -> None:
    status = server.status()
    assert status.running is True
    assert status.version == server.versions.neo4j
    assert status.version.startswith("5.26.")
    assert status.pid == int(server.pid_file.read_text())
    assert status.bolt_uri == server.uri
    assert status.browser_url == f"http://127.0.0.1:{server.http_port}/browser/"
    assert status.password == server.password()
    assert status.password_file == server.password_file
    assert server.password() not in repr(status)
    assert server.password() not in status.describe()  # where it is, not what it is
    assert f"password: in {server.password_file}" in status.describe()


def test_listens_on_loopback_only(server: LocalNeo4j) -> None:
    conf = (server.home / "conf" / "neo4j.conf").read_text().splitlines()
    assert "server.default_listen_address=127.0.0.1" in conf
    assert f"server.bolt.listen_address=127.0.0.1:{server.bolt_port}" in conf
    assert f"server.http.listen_address=127.0.0.1:{server.http_port}" in conf
    assert "server.https.enabled=false" in conf
    listening = {
        (conn.laddr.ip, conn.laddr.port)
        for conn in psutil.Process(server.status().pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }
    assert {port for _, port in listening} >= {server.bolt_port, server.http_port}
    assert all(ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback for ip, _ in listening), listening


def test_not_reachable_from_a_non_loopback_address(server: LocalNeo4j) -> None:
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 interface")
    # Control: a listener on that address is reachable from here, so a refusal below means "not listening".
    with socket.create_server((address, 0)) as control:
        socket.create_connection(control.getsockname()[:2], timeout=3).close()
    for port in (server.bolt_port, server.http_port):
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=3).close()


def test_start_is_idempotent(server: LocalNeo4j) -> None:
    pid = server.status().pid
    began = time.monotonic()
    status = server.start()
    assert time.monotonic() - began < 5
    assert status.running and status.pid == pid
    # A second handle on the same home (as a later CLI command would build) sees the same server.
    twin = LocalNeo4j(
        home=server.home,
        cache_dir=server.cache_dir,
        bolt_port=server.bolt_port,
        http_port=server.http_port,
        heap="512m",
        pagecache="256m",
    )
    assert twin.start().pid == pid


def test_a_refused_password_gets_advice_that_keeps_the_data(server: LocalNeo4j) -> None:
    twin = LocalNeo4j(
        home=server.home,
        cache_dir=server.cache_dir,
        bolt_port=server.bolt_port,
        http_port=server.http_port,
        heap="512m",
        pagecache="256m",
        password="not-the-password",
    )
    with pytest.raises(Neo4jServerError, match="refuses the password from NEO4J_PASSWORD") as caught:
        twin.start(timeout=30)
    assert "Set NEO4J_PASSWORD to the password the database was created with" in str(caught.value)
    assert "delete" not in str(caught.value).lower()
    assert server.status().running  # the running server was left alone


def test_a_taken_port_is_reported(server: LocalNeo4j, tmp_path: Path) -> None:
    other = LocalNeo4j(
        home=tmp_path / "other",
        cache_dir=server.cache_dir,
        bolt_port=server.bolt_port,
        http_port=server.http_port + 1 if server.http_port < 65535 else 1024,
        heap="512m",
        pagecache="256m",
    )
    with pytest.raises(Neo4jServerError, match=rf"Bolt port 127\.0\.0\.1:{server.bolt_port} is already in use"):
        other.start(timeout=30)
    assert not other.pid_file.exists()


def test_run_admin_reaches_the_bulk_importer(server: LocalNeo4j) -> None:
    out = server.run_admin(["database", "import", "full", "--help"])
    assert "neo4j-admin database import full" in out
    assert "--nodes" in out


def test_run_admin_failure_raises_with_output(server: LocalNeo4j) -> None:
    with pytest.raises(Neo4jServerError, match="neo4j-admin no-such-command failed"):
        server.run_admin(["no-such-command"])


def test_stop_leaves_nothing_running_and_restart_keeps_the_password(server: LocalNeo4j) -> None:
    pid = server.status().pid
    assert pid is not None
    assert server.stop() is True
    assert not psutil.pid_exists(pid)
    assert _processes_of(server.home) == []
    assert not server.pid_file.exists()
    status = server.status()
    assert (status.running, status.pid, status.version) == (False, None, None)
    assert server.stop() is False  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.bolt_port), timeout=3).close()

    restarted = server.start()
    assert restarted.running and restarted.pid != pid
    assert _return_one(server.uri, server.password()) == 1


#: Quotes, backslash, spaces, a comment sign and an @: the argument file that carries it must keep it intact.
GIVEN_PASSWORD = 'given "pass" \\ #42 @x'


def test_built_from_settings_with_a_given_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bolt_port, http_port = free_ports(2)
    for key, value in {
        "RINGWATCH_DATA_DIR": str(tmp_path / "data"),
        "RINGWATCH_BOLT_PORT": str(bolt_port),
        "RINGWATCH_HTTP_PORT": str(http_port),
        "RINGWATCH_NEO4J_HEAP": "512m",
        "RINGWATCH_NEO4J_PAGECACHE": "256m",
        "NEO4J_PASSWORD": GIVEN_PASSWORD,
    }.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    server = LocalNeo4j(settings, extra_conf=FAST_SHUTDOWN_CONF)
    assert (server.home, server.uri) == (settings.neo4j_home, settings.local_uri)
    assert (server.heap, server.pagecache) == ("512m", "256m")
    command_lines: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(cmd, *args, **kwargs):
        command_lines.append([str(c) for c in cmd])
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    try:
        status = server.start(timeout=240)
        assert status.running and status.password_file is None and status.password == GIVEN_PASSWORD
        assert _return_one(settings.local_uri, GIVEN_PASSWORD) == 1
        assert not server.password_file.exists()  # a password from the environment is never written down
        assert not list(server.home.rglob("*.args"))  # nor is the argument file that carried it left behind
        assert not [p for p in _processes_of(server.home) if GIVEN_PASSWORD in " ".join(p.cmdline())]
    finally:
        server.stop()
    assert not server.status().running
    admin = [c for c in command_lines if "set-initial-password" in c]
    assert len(admin) == 1 and not [a for a in admin[0] if "given" in a]  # never on a command line (`ps`)


def test_store_logs_and_config_are_owner_only(server: LocalNeo4j) -> None:
    assert server.status().running
    loose = [
        (str(p.relative_to(server.home)), oct(stat.S_IMODE(p.stat().st_mode)))
        for p in [server.home, *server.home.rglob("*")]
        if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert loose == []
    assert (server.layout.data_dir / "databases" / "neo4j").is_dir()  # the store is among what was checked
