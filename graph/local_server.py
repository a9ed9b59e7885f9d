"""A Neo4j Community 5.26 server that ringwatch installs from Maven Central and runs on this machine.

Used when ``NEO4J_URI`` is not set. The jars are fetched once into the cache folder (``mvn`` on a small pom);
each server has its own home folder (conf, data, logs, password) and runs as a detached JVM that outlives the
command that started it. It listens on 127.0.0.1 only, with authentication on.

Typical use::

    server = LocalNeo4j.from_settings(load_settings(), on_status=console.print)
    server.start()
    driver = open_driver(server.uri, server.username, server.password())
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil
from neo4j.exceptions import AuthError, DriverError, Neo4jError

from graph.driver import WRONG_PASSWORD_ADVICE, open_driver
from graph.errors import ConfigurationError, Neo4jServerError
from graph.neo4j_conf import (
    FAST_SHUTDOWN_CONF,
    JVM_FLAGS,
    SUPPORTED_JAVA,
    ServerLayout,
    StatusCallback,
    check_memory_size,
    fetch_jars,
    file_lock,
    find_java,
    java_major_version,
    pinned_versions,
    render_conf,
    write_atomic,
)
from graph.private_files import FILE_MODE, PRIVATE_UMASK, write_private
from graph.settings import Settings

SERVER_MAIN: Final[str] = "org.neo4j.server.CommunityEntryPoint"
ADMIN_MAIN: Final[str] = "org.neo4j.server.startup.Neo4jAdminCommand"
USERNAME: Final[str] = "neo4j"


#: Seconds ``start`` waits for Bolt to answer by default.
START_TIMEOUT_S: Final = 180.0


@dataclass(frozen=True)
class LocalServerStatus:
    """What ``ringwatch neo4j status`` shows. ``pid`` without ``running`` means starting or unresponsive."""

    running: bool
    pid: int | None
    version: str | None
    bolt_uri: str
    browser_url: str
    home: Path
    password_file: Path | None
    password: str | None = field(repr=False)

    def describe(self) -> str:
        """Return the status as a few ``name: value`` lines: where the password is, never the password."""
        state = "running" if self.running else ("not answering" if self.pid else "stopped")
        if self.password_file is None:
            where = "from NEO4J_PASSWORD"
        elif self.password is None:
            where = f"not created yet (generated into {self.password_file} on first start)"
        else:
            where = f"in {self.password_file} (readable by you only)"
        return "\n".join(
            [
                f"state:    {state}" + (f" (pid {self.pid})" if self.pid else ""),
                f"version:  Neo4j {self.version}" if self.version else "version:  unknown (not running)",
                f"bolt:     {self.bolt_uri}",
                f"browser:  {self.browser_url}",
                f"user:     {USERNAME}",
                f"password: {where}",
                f"home:     {self.home}",
            ]
        )


class LocalNeo4j:
    """One locally managed Neo4j server: install, start, stop, status and ``neo4j-admin``.

    Built from :class:`Settings` (``LocalNeo4j(settings)``); any keyword given explicitly overrides the
    setting, and without settings ``home`` and ``cache_dir`` are required (tests do that).

    Args:
        settings: Source of home (``settings.neo4j_home``), cache folder, ports, memory and password.
        home: The server's folder (conf, data, logs, run, import, plugins, password).
        cache_dir: Download cache; jars go to ``cache_dir/neo4j-<version>/lib`` and are shared by all homes.
        bolt_port: Bolt port on 127.0.0.1 (default 7687).
        http_port: HTTP port on 127.0.0.1, serving Neo4j Browser at ``/browser/`` (default 7474).
        heap: JVM heap, initial and maximum (default ``2g``).
        pagecache: Page cache (default ``2g``). Heap plus page cache must fit in physical memory.
        password: Password to create the ``neo4j`` user with; if neither this nor ``NEO4J_PASSWORD`` is set,
            one is generated on first start and kept in ``home/password`` (mode 0600).
        extra_conf: More ``neo4j.conf`` settings (5.x names).
        on_status: Receives progress lines (``rich``'s ``console.print`` fits); silent when ``None``.

    Raises:
        ValueError: A bad port, memory size or missing home/cache folder.
        ConfigurationError: The password is shorter than Neo4j's minimum of 8 characters.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        home: Path | None = None,
        cache_dir: Path | None = None,
        bolt_port: int | None = None,
        http_port: int | None = None,
        heap: str | None = None,
        pagecache: str | None = None,
        password: str | None = None,
        extra_conf: Mapping[str, str] | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        if settings is not None:
            home = settings.neo4j_home if home is None else home
            cache_dir = settings.cache_dir if cache_dir is None else cache_dir
            bolt_port = settings.bolt_port if bolt_port is None else bolt_port
            http_port = settings.http_port if http_port is None else http_port
            heap = settings.neo4j_heap if heap is None else heap
            pagecache = settings.neo4j_pagecache if pagecache is None else pagecache
            if password is None and settings.neo4j_password is not None:
                password = settings.neo4j_password.get_secret_value()
        if home is None or cache_dir is None:
            raise ValueError(f"home and cache_dir are required without settings, got {home=} {cache_dir=}")
        bolt_port = 7687 if bolt_port is None else bolt_port
        http_port = 7474 if http_port is None else http_port
        for name, port in (("bolt_port", bolt_port), ("http_port", http_port)):
            if not 1 <= port <= 65535:
                raise ValueError(f"{name} must be in 1..65535, got {port}")
        if bolt_port == http_port:
            raise ValueError(f"bolt_port and http_port must differ, both are {bolt_port}")
        if password is not None and len(password) < 8:
            raise ConfigurationError("NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)")
        self.home = Path(home).expanduser().resolve()
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.bolt_port = bolt_port
        self.http_port = http_port
        self.heap = check_memory_size("heap", heap or "2g")
        self.pagecache = check_memory_size("pagecache", pagecache or "2g")
        self.extra_conf = dict(extra_conf or {})
        self._given_password = password
        self._say: StatusCallback = on_status or (lambda _line: None)
        self.versions = pinned_versions()
        self.install_dir = self.cache_dir / f"neo4j-{self.versions.neo4j}"
        self.layout = ServerLayout(home=self.home, lib_dir=self.install_dir / "lib")
        self._proc: subprocess.Popen[bytes] | None = None
        self._java_path: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, on_status: StatusCallback | None = None) -> LocalNeo4j:
        """Build the server that ``settings`` describe; same as ``LocalNeo4j(settings, on_status=…)``."""
        return cls(settings, on_status=on_status)

    # -- addresses and credentials -------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """Bolt URI of this server (``bolt://127.0.0.1:<bolt_port>``)."""
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def browser_url(self) -> str:
        """Neo4j Browser's address (``http://127.0.0.1:<http_port>/browser/``)."""
        return f"http://127.0.0.1:{self.http_port}/browser/"

    @property
    def username(self) -> str:
        """The admin user the server is created with (always ``neo4j``)."""
        return USERNAME

    @property
    def password_file(self) -> Path:
        """Where a generated password is kept."""
        return self.home / "password"

    @property
    def pid_file(self) -> Path:
        return self.layout.run_dir / "neo4j.pid"

    @property
    def console_log(self) -> Path:
        return self.layout.logs_dir / "console.log"

    def password(self) -> str:
        """Return the password of the ``neo4j`` user.

        Raises:
            Neo4jServerError: None was given and the server has never been started, so none exists yet.
        """
        if self._given_password is not None:
            return self._given_password
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise Neo4jServerError(
                f"no password yet for the local Neo4j in {self.home}: start it first "
                "(`ringwatch neo4j start`) or set NEO4J_PASSWORD"
            ) from None

    # -- install -------------------------------------------------------------------------------------

    def install(self, *, timeout: float = 1800.0) -> Path:
        """Fetch the Neo4j and Neo4j Browser jars with Maven, once per version (idempotent).

        The marker file is written only after a complete copy, so an interrupted download is redone.

        Args:
            timeout: Seconds the download may take.

        Returns:
            The folder holding the jars (the server's ``lib/``).

        Raises:
            Neo4jServerError: Java (17+) or Maven is missing, or the download failed.
        """
        return fetch_jars(self.install_dir, self.versions, on_status=self._say, timeout=timeout)

    # -- start / stop / status -----------------------------------------------------------------------

    def write_conf(self) -> Path:
        """(Re)write ``conf/neo4j.conf`` from this object's settings; returns its path."""
        self.layout.make_dirs()
        conf = self.layout.conf_dir / "neo4j.conf"
        write_atomic(
            conf,
            render_conf(
                self.layout,
                bolt_port=self.bolt_port,
                http_port=self.http_port,
                heap=self.heap,
                pagecache=self.pagecache,
                extra=self.extra_conf,
            ),
        )
        return conf

    def start(self, timeout: float = START_TIMEOUT_S) -> LocalServerStatus:
        """Start the server in the background and return once ``RETURN 1`` answers over Bolt.

        Installs the jars first if needed and sets the initial password before the very first start. If the
        server is already running it returns at once. A start that fails stops the process it launched.

        Args:
            timeout: Seconds to wait for Bolt to answer once the JVM is launched (a first-run download of
                the jars comes on top, with its own limit).

        Returns:
            The running server's status.

        Raises:
            Neo4jServerError: A port is taken, the JVM exited, the password is refused, or Bolt did not answer
                within ``timeout`` (the message quotes the end of ``logs/console.log``).
        """
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.layout.make_dirs()
        with file_lock(self.layout.run_dir / "start.lock"):
            pid = self._running_pid()
            if pid is not None:  # started earlier (perhaps by another command): just wait until it answers
                self._wait_for_bolt(pid, time.monotonic() + timeout, log_offset=0, launched=False)
                return self.status()
            self.pid_file.unlink(missing_ok=True)
            self.install()
            self._check_ports_free()
            self.write_conf()
            password = self._ensure_password()
            if not (self.layout.data_dir / "databases" / "system").is_dir():
                self._set_initial_password(password)
            started = time.monotonic()
            pid, log_offset = self._launch()
            self._say(f"Starting Neo4j {self.versions.neo4j} (pid {pid}) …")
            try:
                self._wait_for_bolt(pid, started + timeout, log_offset, launched=True)
            except BaseException:
                self._terminate(pid, timeout=30.0)
                raise
        self._say(f"Neo4j is up in {time.monotonic() - started:.1f} s: {self.uri}  browser {self.browser_url}")
        return self.status()

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds (idempotent).

        Returns:
            True if a running server was stopped, False if none was running.

        Raises:
            Neo4jServerError: The process survived SIGKILL.
        """
        pid = self._running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._say(f"Stopping Neo4j (pid {pid}) …")
        self._terminate(pid, timeout=timeout)
        return True

    def status(self) -> LocalServerStatus:
        """Report whether the server runs and answers, its version, addresses and password."""
        pid = self._running_pid()
        version = None
        if pid is not None:
            with suppress(Neo4jError, DriverError, OSError, Neo4jServerError):
                version = self._query_version()
        password = None
        with suppress(Neo4jServerError):
            password = self.password()
        return LocalServerStatus(
            running=version is not None,
            pid=pid,
            version=version,
            bolt_uri=self.uri,
            browser_url=self.browser_url,
            home=self.home,
            password_file=None if self._given_password is not None else self.password_file,
            password=password,
        )

    def run_admin(self, args: Sequence[str], *, heap: str | None = None, timeout: float | None = None) -> str:
        """Run ``neo4j-admin`` with this server's home, conf and jars, e.g. ``["database", "import", "full", …]``.

        Args:
            args: The arguments after ``neo4j-admin``.
            heap: Heap of the JVM that runs the command (``HEAP_SIZE``), e.g. ``"2g"`` for a large import.
            timeout: Seconds before it is killed; ``None`` waits.

        Returns:
            The command's standard output.

        Raises:
            Neo4jServerError: It exited non-zero (the message quotes the end of its output).
        """
        if heap is not None:
            check_memory_size("heap", heap)
        self.install()
        self.write_conf()
        return self._run_admin(list(args), heap=heap, timeout=timeout)

    # -- internals -----------------------------------------------------------------------------------

    def _java(self) -> Path:
        if self._java_path is None:
            self._java_path = find_java()
            major = java_major_version(self._java_path)
            if major not in SUPPORTED_JAVA:
                self._say(
                    f"Note: Neo4j 5.26 supports Java 17 and 21; {self._java_path} is Java {major} "
                    "(it starts, with warnings). Set JAVA_HOME to pick another."
                )
        return self._java_path

    def _java_env(self) -> dict[str, str]:
        env = dict(os.environ, NEO4J_HOME=str(self.home), NEO4J_CONF=str(self.layout.conf_dir))
        env.pop("JAVA_OPTS", None)  # it would replace the server.jvm.additional flags of neo4j-admin's JVM
        return env

    def _set_initial_password(self, password: str) -> None:
        """``neo4j-admin dbms set-initial-password``, the password passed in an owner-only argument file
        (``@file``, expanded by the command's parser) so that it never shows in the process list."""
        argfile = self.layout.run_dir / "initial-password.args"
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        write_private(argfile, f'"{escaped}"\n')
        try:
            self._run_admin(["dbms", "set-initial-password", f"@{argfile}"])
        finally:
            argfile.unlink(missing_ok=True)

    def _run_admin(self, args: list[str], *, heap: str | None = None, timeout: float | None = None) -> str:
        env = self._java_env()
        if heap is not None:
            env["HEAP_SIZE"] = heap
        cmd = [str(self._java()), "-Xmx128m", "-cp", f"{self.layout.lib_dir}/*", ADMIN_MAIN, *args]
        shown = " ".join(args)
        try:
            # umask 077: what the importer writes (the new store) is owner-only, like the server's own files.
            done = subprocess.run(
                cmd,
                cwd=self.home,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
                umask=PRIVATE_UMASK,
            )
        except subprocess.TimeoutExpired as e:
            raise Neo4jServerError(f"neo4j-admin {shown} did not finish within {timeout} s") from e
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise Neo4jServerError(f"neo4j-admin {shown} failed (exit {done.returncode}):\n{tail}")
        return done.stdout

    def _ensure_password(self) -> str:
        if self._given_password is not None:
            return self._given_password
        if self.password_file.is_file():
            return self.password()
        if (self.layout.data_dir / "databases" / "system").is_dir():
            raise Neo4jServerError(
                f"the Neo4j database in {self.layout.data_dir} already exists but {self.password_file} is "
                "missing: set NEO4J_PASSWORD to the password it was created with"
            )
        generated = secrets.token_hex(20)  # hex: never starts with "-", which neo4j-admin would read as an option
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(generated + "\n")
        return generated

    def _launch(self) -> tuple[int, int]:
        cmd = [
            str(self._java()),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *JVM_FLAGS,
            "-cp",
            f"{self.layout.lib_dir}/*:{self.layout.plugins_dir}/*",
            SERVER_MAIN,
            f"--home-dir={self.home}",
            f"--config-dir={self.layout.conf_dir}",
            "--console-mode",
        ]
        fd = os.open(self.console_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "ab") as log:
            log.write(f"\n==== ringwatch: starting Neo4j at {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
            log.flush()
            offset = log.tell()
            # Own session: the server outlives the command that started it and ignores its Ctrl-C.
            # umask 077: the store files, transaction logs and server logs it creates are owner-only.
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.home,
                env=self._java_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        write_atomic(self.pid_file, f"{self._proc.pid}\n")
        return self._proc.pid, offset

    def _wait_for_bolt(self, pid: int, deadline: float, log_offset: int, *, launched: bool) -> None:
        last_error = "no answer yet"
        while True:
            if not self._pid_alive(pid):
                raise Neo4jServerError(f"Neo4j exited during startup. {self._log_tail(log_offset)}")
            try:
                self._query_version()
                return
            except AuthError as e:
                raise Neo4jServerError(
                    f"the local Neo4j in {self.home} refuses the password "
                    f"{'from NEO4J_PASSWORD' if self._given_password else f'in {self.password_file}'}: its "
                    f"database was created with another one. {WRONG_PASSWORD_ADVICE}"
                ) from e
            except (Neo4jError, DriverError, OSError) as e:
                last_error = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                what = "did not answer" if launched else "is running but did not answer"
                raise Neo4jServerError(
                    f"Neo4j (pid {pid}) {what} on {self.uri} in time ({last_error}). {self._log_tail(log_offset)}"
                )
            time.sleep(0.5)

    def _query_version(self) -> str:
        with closing(
            open_driver(self.uri, USERNAME, self.password(), connection_timeout=3.0, connection_acquisition_timeout=5.0)
        ) as d:
            with d.session() as session:  # auto-commit: a readiness probe must not be retried
                session.run("RETURN 1").consume()
                record = session.run(
                    "CALL dbms.components() YIELD name, versions WHERE name = 'Neo4j Kernel' "
                    "RETURN versions[0] AS version"
                ).single(strict=True)
        return str(record["version"])

    def _running_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is this home's Neo4j, else None."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
            cmdline = psutil.Process(pid).cmdline()
        except (OSError, ValueError, psutil.Error):
            return None
        if SERVER_MAIN not in cmdline or f"--home-dir={self.home}" not in cmdline:
            return None  # pid reused by an unrelated process
        return pid if self._pid_alive(pid) else None

    def _pid_alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # also reaps our own child
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                return True
            if proc.ppid() == os.getpid():  # launched by another LocalNeo4j in this process: reap it
                with suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            return False
        except psutil.Error:
            return False

    def _terminate(self, pid: int, *, timeout: float) -> None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 15.0)):
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end and self._pid_alive(pid):
                time.sleep(0.2)
            if not self._pid_alive(pid):
                self.pid_file.unlink(missing_ok=True)
                self._proc = None
                return
            if sig == signal.SIGTERM:
                self._say(f"Neo4j did not stop within {timeout:.0f} s; killing it")
        raise Neo4jServerError(f"Neo4j (pid {pid}) survived SIGKILL; check `ps -p {pid}`")

    def _check_ports_free(self) -> None:
        for name, env, port in (
            ("Bolt", "RINGWATCH_BOLT_PORT", self.bolt_port),
            ("HTTP", "RINGWATCH_HTTP_PORT", self.http_port),
        ):
            if _port_taken(port):
                raise Neo4jServerError(
                    f"cannot start Neo4j: its {name} port 127.0.0.1:{port} is already in use"
                    f"{_port_owner(port)}. Stop that program, or pick another port with {env}."
                )

    def _log_tail(self, offset: int, lines: int = 25) -> str:
        try:
            with open(self.console_log, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return f"(no console log at {self.console_log})"
        tail = "\n".join(text.strip().splitlines()[-lines:])
        return f"End of {self.console_log}:\n{tail}" if tail else f"{self.console_log} is empty."


def free_ports(count: int) -> list[int]:
    """Ask the OS for ``count`` distinct free TCP ports on 127.0.0.1."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_throwaway(
    tmp_dir: Path, cache_dir: Path, *, timeout: float = 240.0, on_status: StatusCallback | None = None
) -> LocalNeo4j:
    """Start a small test server in ``tmp_dir/neo4j`` on free ports (heap 1g, page cache 256m).

    The jars come from (and, the first time, go to) ``cache_dir``, so a test session downloads them once.
    The caller stops it with ``server.stop()``.

    Args:
        tmp_dir: A fresh folder for the server's home.
        cache_dir: The shared jar cache.
        timeout: Seconds to wait for the server (the first call also downloads the jars).
        on_status: Receives progress lines.

    Returns:
        The running server; connect with ``server.uri``, ``server.username`` and ``server.password()``.
    """
    bolt_port, http_port = free_ports(2)
    server = LocalNeo4j(
        home=Path(tmp_dir) / "neo4j",
        cache_dir=Path(cache_dir),
        bolt_port=bolt_port,
        http_port=http_port,
        heap="1g",
        pagecache="256m",
        extra_conf=FAST_SHUTDOWN_CONF,
        on_status=on_status,
    )
    server.start(timeout=timeout)
    return server


def _port_taken(port: int) -> bool:
    # Bind the way the JVM does (SO_REUSEADDR), so a port in TIME_WAIT after our own stop counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f" by pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline())[:120]})"
    except psutil.Error:
        pass
    return ""
