"""What ``bench/score.py`` and ``bench/e2e.py`` share: timed phases with CPU and peak-memory figures.

A :class:`PhaseMeter` samples, twice a second, the resident memory of this process's tree (this process,
its helpers, Ray's processes and workers) and of the JVMs in it (the Neo4j server the bench started, and
``neo4j-admin import`` while the bulk loader runs). Each ``with meter.phase(name):`` block records its wall
seconds, CPU seconds of this process and of the Neo4j server, and the peaks seen while it ran.

A memory watchdog rides along (:meth:`PhaseMeter._watch`): a bench that would push the machine into the
kernel's OOM killer ends itself first, since on a shared machine the killer may choose someone else's
process.

Resident memory is summed over processes, so pages they share (Ray's object store, mapped files) count once
per process: the tree figure is an upper bound.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

MIB = 2**20
#: The memory watchdog's floor: below this much available memory on the machine, the bench ends itself.
MIN_AVAILABLE_MIB = 1536


def _is_jvm(proc: psutil.Process) -> bool:
    try:
        return proc.name() == "java"
    except psutil.Error:
        return False


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def _cpu(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return None


class PhaseMeter:
    """Times named phases; samples memory of this process tree and of Neo4j in the background.

    Args:
        neo4j_pid_file: where the server writes its pid (read at every sample: the bulk loader restarts it).
        interval: seconds between samples.
    """

    def __init__(
        self, neo4j_pid_file: Path | None = None, interval: float = 0.25, min_available_mib: float = MIN_AVAILABLE_MIB
    ) -> None:
        self.neo4j_pid_file = neo4j_pid_file
        self.interval = interval
        self.min_available_mib = min_available_mib
        self.tripped: str | None = None
        self.phases: dict[str, dict[str, Any]] = {}
        self.peak = {"python_mib": 0.0, "python_tree_mib": 0.0, "jvm_mib": 0.0, "neo4j_server_mib": 0.0}
        self._current: dict[str, float] | None = None
        self._current_name: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._me = psutil.Process(os.getpid())

    # -- sampling ------------------------------------------------------------------------------------

    def neo4j_process(self) -> psutil.Process | None:
        if self.neo4j_pid_file is None:
            return None
        try:
            return psutil.Process(int(self.neo4j_pid_file.read_text().strip()))
        except (OSError, ValueError, psutil.Error):
            return None

    def sample(self) -> dict[str, float]:
        """Current resident memory (MiB): this process, its non-JVM tree, the JVMs, the Neo4j server."""
        me = _rss(self._me)
        tree, jvm = me, 0
        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            if _is_jvm(child):
                jvm += _rss(child)
            else:
                tree += _rss(child)
        server = self.neo4j_process()
        server_rss = _rss(server) if server is not None else 0
        if server is not None and server not in children:
            jvm += server_rss  # a server started by someone else's process tree
        return {
            "python_mib": me / MIB,
            "python_tree_mib": tree / MIB,
            "jvm_mib": jvm / MIB,
            "neo4j_server_mib": server_rss / MIB,
        }

    def _record(self) -> None:
        now = self.sample()
        with self._lock:
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
                if self._current is not None:
                    self._current[k] = max(self._current.get(k, 0.0), v)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._record()
            self._watch()

    def _watch(self) -> None:
        """The memory watchdog: when the machine runs short, end this bench before the kernel's OOM killer
        has to pick a victim (on a shared machine it may pick a neighbour's process).

        First a Ray worker (or other helper) of ours holding more than 1 GiB is killed, so the failure
        surfaces in the bench as an exception and the servers are stopped in order. When the memory is in
        this process itself, nothing can interrupt the C code that is allocating: the phases so far go to
        stderr, our Neo4j server is stopped and the process exits with 137.
        """
        available = psutil.virtual_memory().available / MIB
        if available >= self.min_available_mib:
            return
        phase = next(iter(self._current_name), "?") if self._current_name else "?"
        helpers = []
        try:
            helpers = [c for c in self._me.children(recursive=True) if not _is_jvm(c)]
        except psutil.Error:
            pass
        biggest = max(helpers, key=_rss, default=None)
        note = (
            f"memory watchdog: {available:.0f} MiB available (< {self.min_available_mib:.0f}) during "
            f"phase {phase!r}; this process {_rss(self._me) / MIB:.0f} MiB"
        )
        if biggest is not None and _rss(biggest) > 1024 * MIB and _rss(biggest) > _rss(self._me) / 2:
            self.tripped = f"{note}; killed helper pid {biggest.pid} ({_rss(biggest) / MIB:.0f} MiB)"
            print(f"[bench] {self.tripped}", file=sys.stderr, flush=True)
            with contextlib.suppress(psutil.Error):
                biggest.kill()
            return
        self.tripped = f"{note}; stopping Neo4j and exiting"
        print(f"[bench] {self.tripped}", file=sys.stderr, flush=True)
        print(
            json.dumps({"watchdog": self.tripped, "phases": self.phases, "peak_mib": self.peaks()}, default=str),
            file=sys.stderr,
            flush=True,
        )
        server = self.neo4j_process()
        if server is not None:
            with contextlib.suppress(psutil.Error):
                server.terminate()
                server.wait(30)
        os._exit(137)

    def __enter__(self) -> PhaseMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    # -- phases --------------------------------------------------------------------------------------

    @contextmanager
    def phase(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a phase; the yielded dict receives the figures on exit (add your own keys to it)."""
        record: dict[str, Any] = {}
        server = self.neo4j_process()
        neo_cpu0, py_cpu0 = _cpu(server), _cpu(self._me)
        with self._lock:
            self._current = {}
            self._current_name = [name]
        start = self.sample()
        self._record()
        started = time.perf_counter()
        try:
            yield record
        finally:
            seconds = time.perf_counter() - started
            self._record()
            with self._lock:
                peaks, self._current, self._current_name = self._current or {}, None, []
            server_after = self.neo4j_process()
            neo_cpu1, py_cpu1 = _cpu(server_after), _cpu(self._me)
            same_server = server is not None and server_after is not None and server.pid == server_after.pid
            record.update(
                {
                    "seconds": round(seconds, 2),
                    "python_cpu_s": round(py_cpu1 - py_cpu0, 2)
                    if py_cpu0 is not None and py_cpu1 is not None
                    else None,
                    # None when the server restarted inside the phase (the bulk loader): its CPU is not comparable.
                    "neo4j_cpu_s": round(neo_cpu1 - neo_cpu0, 2)
                    if same_server and neo_cpu0 is not None and neo_cpu1 is not None
                    else None,
                    "peak_mib": {k: round(v) for k, v in peaks.items()},
                    "python_start_mib": round(start["python_mib"]),
                }
            )
            self.phases[name] = record

    def peaks(self) -> dict[str, int]:
        with self._lock:
            return {k: round(v) for k, v in self.peak.items()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None, so the printed JSON is strict (``NaN`` is not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj
