"""Logging: the ``ringwatch`` logger hierarchy, JSON lines to a rotating file, readable lines on standard error.

Library code only *emits* records, through ``logging.getLogger(__name__)`` (every module of the four packages
is under ``ringwatch.<package>…`` once :func:`logger` names it so); it never prints and never configures
logging. The command line configures it once per process with :func:`configure_logging`:

- ``<data folder>/logs/ringwatch.jsonl``: one JSON object per record (``ts``, ``level``, ``logger``,
  ``run_id``, ``message``, and the record's ``extra`` fields), INFO and above, rotated at 10 MB, 5 files kept,
  created owner-only (the records name accounts);
- standard error: ``LEVEL logger [run id] message``, from ``RINGWATCH_LOG_LEVEL`` up (default WARNING, so a
  command's own output stays readable), control characters shown as escapes.

Every record carries the current run id (:func:`graph.runs.current_run`), or ``null`` outside a job. A record
logged with ``extra=SHOWN`` (the command line has already shown it in its own words) goes to the file only.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from graph.private_files import FILE_MODE, private_dir
from graph.runs import current_run
from graph.settings import Settings

ROOT: Final = "ringwatch"
LOG_FILE: Final = "ringwatch.jsonl"
MAX_BYTES: Final = 10_000_000
BACKUPS: Final = 5

#: ``extra=`` of a record the terminal has already shown: it goes to the log file only.
SHOWN: Final = {"shown": True}

# C0 and C1 controls and DEL (tab included), plus the invisible bidirectional controls that reorder what a
# terminal shows: what must never reach a terminal from the data.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and goes into the JSON.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "run_id", "shown"}


def printable(value: object) -> str:
    """``value`` as text with every control character shown as an escape (``\\x1b``, ``\\u202e``)."""
    return _UNPRINTABLE.sub(_escape_char, str(value))


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def logger(module: str) -> logging.Logger:
    """The logger for ``module`` (pass ``__name__``) in the ``ringwatch`` hierarchy: ``ringwatch.<module>``."""
    return logging.getLogger(f"{ROOT}.{module}")


class _RunIdFilter(logging.Filter):
    """Puts the current run id on every record (``record.run_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = current_run()
        return True


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO-8601), level, logger, run id, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """``LEVEL logger [run id] message`` with control characters escaped (it is shown in a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        run = getattr(record, "run_id", None)
        text = printable(f"{record.levelname} {record.name}{f' [{run}]' if run else ''} {record.getMessage()}")
        if record.exc_info:
            text += "".join("\n" + printable(line) for line in self.formatException(record.exc_info).splitlines())
        return text


class _CurrentStderr(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # the base class assigns it once; the property ignores it
        pass

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "shown", False) and bool(super().filter(record))


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating log file created owner-only (0600, in a 0700 folder), and only when the first record comes:
    a command that logs nothing (``--help``) creates nothing."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)

    def _open(self) -> io.TextIOWrapper:
        path = Path(self.baseFilename)
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "a", encoding="utf-8")


def configure_logging(settings: Settings, stderr_level: str | None = None) -> Path:
    """Set up the ``ringwatch`` loggers for this process (idempotent: a second call replaces the handlers).

    Args:
        settings: where the data folder is; ``RINGWATCH_LOG_LEVEL`` and ``RINGWATCH_DEBUG``.
        stderr_level: overrides ``settings.log_level`` for standard error.

    Returns:
        The log file's path.
    """
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    root.propagate = False

    path = settings.log_dir / LOG_FILE
    to_file = _PrivateRotatingFile(path)
    to_file.setFormatter(JsonLineFormatter())
    to_file.addFilter(_RunIdFilter())
    to_stderr = _CurrentStderr()
    to_stderr.setLevel("DEBUG" if settings.debug else (stderr_level or settings.log_level))
    to_stderr.setFormatter(ReadableFormatter())
    to_stderr.addFilter(_RunIdFilter())
    root.addHandler(to_file)
    root.addHandler(to_stderr)
    return path
