"""How a locally managed Neo4j is assembled: pinned versions, the jars (via Maven), the Java check, the JVM
flags and ``neo4j.conf``.

Neo4j publishes no server tarball to Maven Central, so :mod:`graph.local_server` builds a home folder by hand
around a shared jar folder; this module holds the pieces of that assembly, and ``local_server`` runs the
process. Only Neo4j 5.x setting names appear here: 5.x refuses to start on an unknown key (strict validation),
including every 4.x name.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from graph.errors import Neo4jServerError
from graph.private_files import private_dir, write_private

StatusCallback = Callable[[str], None]
"""Receives one human-readable progress line (``rich.console.Console.print`` fits)."""

POM_PATH: Final[Path] = Path(__file__).resolve().parent / "neo4j_install" / "pom.xml"
"""The small pom whose runtime dependencies are the server's ``lib/`` folder (it pins both versions)."""

MIN_JAVA: Final[int] = 17
SUPPORTED_JAVA: Final[frozenset[int]] = frozenset({17, 21})
"""Java releases Neo4j 5.26 LTS supports; others are used with a note (5.26.30 does start on Java 25)."""

# The flags of the 5.x tarball's default neo4j.conf that matter here. 5.26.30 on Java 17 happens to start
# without the --add-opens set, but the tarball's conf ships them (direct-buffer access), so they stay.
JVM_FLAGS: Final[tuple[str, ...]] = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dfile.encoding=UTF-8",
)

# Internal 5.26 settings that shorten Bolt's shutdown from ~10 s to ~1 s. Not part of Neo4j's documented
# surface, so only throwaway test servers use them (see ``start_throwaway``); a future version that drops them
# would refuse the conf, which the pinned version in the pom guards against.
FAST_SHUTDOWN_CONF: Final[Mapping[str, str]] = {
    "internal.server.bolt.thread_pool_shutdown_wait_time": "500ms",
    "internal.server.bolt.connection_shutdown_wait_time": "500ms",
}

_INSTALL_MARKER: Final[str] = "INSTALLED.json"
_MEMORY_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_SETTING_KEY = re.compile(r"^[a-z][a-z0-9_.]*$")
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True)
class PinnedVersions:
    """The Neo4j and Neo4j Browser versions the install pom pins."""

    neo4j: str
    browser: str


def pinned_versions(pom: Path = POM_PATH) -> PinnedVersions:
    """Read the pinned versions from the install pom, the one place they are written.

    Args:
        pom: The pom to read; defaults to ``graph/neo4j_install/pom.xml``.

    Returns:
        The ``neo4j.version`` and ``neo4j.browser.version`` properties.

    Raises:
        Neo4jServerError: The pom is missing or lacks either property.
    """
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as e:
        raise Neo4jServerError(f"cannot read the Neo4j install pom {pom}: {e}") from e
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    neo4j = root.findtext("m:properties/m:neo4j.version", namespaces=ns)
    browser = root.findtext("m:properties/m:neo4j.browser.version", namespaces=ns)
    if not neo4j or not browser:
        raise Neo4jServerError(f"{pom} must set the neo4j.version and neo4j.browser.version properties")
    return PinnedVersions(neo4j=neo4j.strip(), browser=browser.strip())


def check_memory_size(name: str, value: str) -> str:
    """Check a heap or page-cache size in Neo4j/JVM notation (``512m``, ``2g``).

    Args:
        name: The argument's name, for the error message.
        value: The size.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: ``value`` is not a positive number with an optional k/m/g suffix.
    """
    if not _MEMORY_SIZE.match(value):
        raise ValueError(f"{name} must look like '512m' or '2g', got {value!r}")
    return value


def find_java() -> Path:
    """Find ``java`` (``$JAVA_HOME/bin/java`` first, then ``PATH``) and check it is Java 17 or newer.

    Returns:
        The path of the ``java`` executable.

    Raises:
        Neo4jServerError: No Java, or one older than 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        if found is None:
            raise Neo4jServerError(
                "Java is not installed: Neo4j 5.26 needs Java 17 or 21 "
                "(Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`), or set JAVA_HOME."
            )
        candidate = Path(found)
    major = java_major_version(candidate)
    if major < MIN_JAVA:
        raise Neo4jServerError(
            f"{candidate} is Java {major}; Neo4j 5.26 needs Java 17 or 21. "
            "Install one and put it first on PATH or point JAVA_HOME at it."
        )
    return candidate


def java_major_version(java: Path) -> int:
    """Ask ``java -version`` for its major release (8 for ``1.8.0_x``, 17 for ``17.0.15``).

    Raises:
        Neo4jServerError: The executable does not run or prints no version.
    """
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Neo4jServerError(f"cannot run {java} -version: {e}") from e
    match = _JAVA_VERSION.search(done.stderr + done.stdout)
    if match is None:
        raise Neo4jServerError(f"cannot tell the Java version from `{java} -version`: {done.stderr.strip()!r}")
    first, second = int(match.group(1)), match.group(2)
    return int(second) if first == 1 and second is not None else first


def find_mvn() -> Path:
    """Find Maven, which fetches the server's jars on first install.

    Raises:
        Neo4jServerError: ``mvn`` is not on ``PATH``.
    """
    found = shutil.which("mvn")
    if found is None:
        raise Neo4jServerError(
            "Maven (`mvn`) is not installed; it downloads Neo4j's jars on first start "
            "(Debian/Ubuntu: `apt-get install maven`). Or set NEO4J_URI to use an existing server."
        )
    return Path(found)


def fetch_jars(
    install_dir: Path,
    versions: PinnedVersions,
    *,
    on_status: StatusCallback | None = None,
    timeout: float = 1800.0,
) -> Path:
    """Fetch the Neo4j and Neo4j Browser jars into ``install_dir/lib`` with Maven, once (idempotent).

    Maven copies into ``lib.partial``, which is renamed to ``lib`` and only then marked complete, so an
    interrupted download is redone from scratch. A file lock keeps concurrent installs from colliding.

    Args:
        install_dir: The version's folder in the cache (``<cache_dir>/neo4j-<version>``).
        versions: The versions to fetch.
        on_status: Receives progress lines.
        timeout: Seconds the download may take.

    Returns:
        The ``lib`` folder.

    Raises:
        Neo4jServerError: Java (17+) or Maven is missing, or the download failed.
    """
    say = on_status or (lambda _line: None)
    lib_dir, marker = install_dir / "lib", install_dir / _INSTALL_MARKER
    if _install_complete(marker, lib_dir, versions):
        return lib_dir
    find_java()
    mvn = find_mvn()
    install_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(install_dir / ".install.lock"):
        if _install_complete(marker, lib_dir, versions):  # another process finished while we waited
            return lib_dir
        staging = install_dir / "lib.partial"
        for stale in (staging, lib_dir):
            shutil.rmtree(stale, ignore_errors=True)
        marker.unlink(missing_ok=True)
        pom = install_dir / "pom.xml"
        shutil.copyfile(POM_PATH, pom)
        say(
            f"Downloading Neo4j {versions.neo4j} and Neo4j Browser {versions.browser} jars "
            f"(~140 MB, first run only) into {install_dir} …"
        )
        started = time.monotonic()
        _run_maven(mvn, pom, staging, versions, say, timeout)
        jars = sorted(p.name for p in staging.glob("*.jar"))
        for needed in (f"neo4j-{versions.neo4j}.jar", f"neo4j-browser-{versions.browser}.jar"):
            if needed not in jars:
                raise Neo4jServerError(f"Maven finished but {needed} is missing from {staging}; run again")
        staging.rename(lib_dir)
        write_atomic(marker, json.dumps({"neo4j": versions.neo4j, "browser": versions.browser, "jars": len(jars)}))
        say(f"Fetched {len(jars)} jars in {time.monotonic() - started:.0f} s.")
    return lib_dir


def _install_complete(marker: Path, lib_dir: Path, versions: PinnedVersions) -> bool:
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded.get("neo4j") == versions.neo4j and recorded.get("browser") == versions.browser and lib_dir.is_dir()


def _run_maven(
    mvn: Path, pom: Path, out_dir: Path, versions: PinnedVersions, say: StatusCallback, timeout: float
) -> None:
    cmd = [
        str(mvn),
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
        f"-Dneo4j.version={versions.neo4j}",
        f"-Dneo4j.browser.version={versions.browser}",
    ]
    tail: deque[str] = deque(maxlen=40)
    downloaded = 0
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        cmd, cwd=pom.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    ) as proc:
        for line in proc.stdout or ():
            tail.append(line.rstrip())
            if line.startswith("Downloaded from"):
                downloaded += 1
                if downloaded % 50 == 0:
                    say(f"  … {downloaded} files downloaded")
            if time.monotonic() > deadline:
                proc.kill()
                raise Neo4jServerError(f"downloading Neo4j's jars took over {timeout:.0f} s; run again")
        rc = proc.wait()
    if rc != 0:
        raise Neo4jServerError(
            f"Maven could not fetch Neo4j's jars (exit {rc}); check access to Maven Central (or a mirror "
            "in ~/.m2/settings.xml). Last output:\n" + "\n".join(tail)
        )


@dataclass(frozen=True)
class ServerLayout:
    """Where a local server keeps things: its home (conf, data, logs, …) and the shared jar folder."""

    home: Path
    lib_dir: Path

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def import_dir(self) -> Path:
        return self.home / "import"

    @property
    def plugins_dir(self) -> Path:
        return self.home / "plugins"

    def make_dirs(self) -> None:
        """Create the home and its folders, owner-only (0700; idempotent, and existing ones are set to 0700):
        the store, logs and import files hold users' data."""
        private_dir(self.home)
        for folder in (self.conf_dir, self.data_dir, self.logs_dir, self.run_dir, self.import_dir, self.plugins_dir):
            private_dir(folder)


def render_conf(
    layout: ServerLayout,
    *,
    bolt_port: int,
    http_port: int,
    heap: str,
    pagecache: str,
    extra: Mapping[str, str] | None = None,
) -> str:
    """Write the text of ``neo4j.conf`` for a loopback-only, authenticated local server.

    Args:
        layout: The server's folders; ``server.directories.lib`` points at the shared jar cache so that
            ``neo4j-admin`` (which builds its classpath from it) finds the jars too.
        bolt_port: Bolt port on 127.0.0.1.
        http_port: HTTP port on 127.0.0.1 (serves Neo4j Browser at ``/browser/``).
        heap: Initial and maximum heap (``512m``).
        pagecache: Page cache size (``256m``).
        extra: More ``key=value`` settings (5.x names), appended last.

    Returns:
        The file's text.

    Raises:
        ValueError: A bad memory size or setting key.
    """
    check_memory_size("heap", heap)
    check_memory_size("pagecache", pagecache)
    settings: list[tuple[str, str]] = [
        ("server.directories.lib", str(layout.lib_dir)),
        ("server.directories.data", str(layout.data_dir)),
        ("server.directories.logs", str(layout.logs_dir)),
        ("server.directories.run", str(layout.run_dir)),
        ("server.directories.import", str(layout.import_dir)),
        ("server.directories.plugins", str(layout.plugins_dir)),
        # Loopback only: nothing on the network can reach the local server.
        ("server.default_listen_address", "127.0.0.1"),
        # Without explicit advertised addresses the discovery document (GET /) that Neo4j Browser reads
        # names the default ports 7687/7474, not the ones configured here.
        ("server.default_advertised_address", "127.0.0.1"),
        ("server.bolt.enabled", "true"),
        ("server.bolt.listen_address", f"127.0.0.1:{bolt_port}"),
        ("server.bolt.advertised_address", f"127.0.0.1:{bolt_port}"),
        ("server.http.enabled", "true"),
        ("server.http.listen_address", f"127.0.0.1:{http_port}"),
        ("server.http.advertised_address", f"127.0.0.1:{http_port}"),
        ("server.https.enabled", "false"),
        ("dbms.security.auth_enabled", "true"),
        ("dbms.usage_report.enabled", "false"),
        ("server.memory.heap.initial_size", heap),
        ("server.memory.heap.max_size", heap),
        ("server.memory.pagecache.size", pagecache),
    ]
    for key, value in (extra or {}).items():
        if not _SETTING_KEY.match(key):
            raise ValueError(f"extra_conf key must be a Neo4j setting name, got {key!r}")
        if "\n" in value:
            raise ValueError(f"extra_conf value for {key} must be one line, got {value!r}")
        settings.append((key, value))
    lines = ["# Written by ringwatch (graph/local_server.py) on every start; edits here are overwritten."]
    lines += [f"{key}={value}" for key, value in settings]
    # Read by neo4j-admin's launcher; the server itself gets the same flags on its command line.
    lines += [f"server.jvm.additional={flag}" for flag in JVM_FLAGS]
    return "\n".join(lines) + "\n"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a temporary file and a rename, so readers never see half
    of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(tmp, text)
    os.replace(tmp, path)
