"""Run ids: one format for every job, and the run a log record belongs to.

Every job (ingest, train, score, rings, erase) names its run ``<job>-<UTC time>-<6 hex digits>``, for example
``score-20261207T024809-3fa9c1``: sortable by time, unique across machines, readable in Neo4j, MLflow and the
log. While a job runs, :func:`run_scope` makes its id the *current run*, which the logging setup
(:mod:`graph.logs`) puts on every record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final

#: The jobs that have runs (the first part of a run id).
JOBS: Final = ("ingest", "train", "score", "rings", "erase", "monitor")
_JOB_NAME = re.compile(r"[a-z][a-z0-9-]*")

_current_run: ContextVar[str | None] = ContextVar("ringwatch_run_id", default=None)


def new_run_id(job: str, at: datetime | None = None) -> str:
    """A new run id for ``job``: ``<job>-<YYYYmmddTHHMMSS in UTC>-<6 random hex digits>``.

    Args:
        job: the job's name (lower case letters, digits and dashes), e.g. ``"score"``.
        at: the run's start (default: now).

    Raises:
        ValueError: ``job`` is not such a name.
    """
    if not _JOB_NAME.fullmatch(job):
        raise ValueError(f"job must be lower case letters, digits and dashes, got {job!r}")
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return f"{job}-{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def current_run() -> str | None:
    """The run id of the job running in this context, or None outside a job."""
    return _current_run.get()


@contextmanager
def run_scope(run_id: str) -> Iterator[str]:
    """Make ``run_id`` the current run for the duration of the block (log records carry it)."""
    token = _current_run.set(run_id)
    try:
        yield run_id
    finally:
        _current_run.reset(token)


Progress = Callable[[str, int, int], None]
"""What a job reports while it runs: called as ``progress(stage, done, total)`` (the command line draws bars)."""
