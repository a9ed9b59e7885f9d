"""Terminal helpers for the command line: safe printing of data, and progress bars fed by
``progress(stage, done, total)``.

Everything shown in the terminal that comes from the data (ids, fingerprints, reasons, file paths, error
messages quoting them) goes through :func:`plain` or :func:`safe`: control characters — terminal escape sequences
that could clear the screen or retitle the window, line breaks that forge output lines, bidirectional overrides —
are shown as escapes (``\\x1b``), and rich markup (``[/x]``) as the text it is rather than as a style to apply
(an unbalanced closing tag would otherwise make printing fail).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graph.logs import printable
from graph.runs import Progress as ProgressCallback

console = Console()
err_console = Console(stderr=True)


def human_output(as_json: bool) -> Console:
    """Where a command's human-readable output goes: standard error when ``--json`` asked for standard output
    to hold the JSON document alone, else standard output."""
    return err_console if as_json else console


def print_json(document: Any) -> None:
    """Write ``document`` as one JSON line on standard output (numbers and paths as JSON can hold them)."""
    sys.stdout.write(json.dumps(document, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def plain(value: object) -> str:
    """``value`` as text with every control character shown as an escape (for rich ``Text``, which does not
    parse markup); the same escaping as the log's (:func:`graph.logs.printable`)."""
    return printable(value)


def safe(value: object) -> str:
    """``value`` as text to put inside a rich markup string: control characters escaped, markup escaped."""
    return escape(plain(value))


@contextmanager
def progress_bar(title: str, out: Console | None = None) -> Iterator[ProgressCallback]:
    """A rich progress bar on ``out`` (default: standard output); yields a ``progress(stage, done, total)``
    callback for pipeline code."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out or console,
        transient=False,
    ) as bar:
        task = bar.add_task(safe(title), total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{safe(title)}: {safe(stage)}", completed=done, total=total)

        yield update
