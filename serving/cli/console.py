"""Terminal helpers for the CLI: safe printing of data, and progress bars fed by ``progress(stage, done, total)``.

Everything shown in the terminal that comes from the data (ids, fingerprints, reasons, file paths, error
messages quoting them) goes through :func:`plain` or :func:`safe`: control characters — terminal escape sequences
that could clear the screen or retitle the window, line breaks that forge output lines, bidirectional overrides —
are shown as escapes (``\\x1b``), and rich markup (``[/x]``) as the text it is rather than as a style to apply
(an unbalanced closing tag would otherwise make printing fail).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err_console = Console(stderr=True)

# C0 and C1 controls and DEL (tab included: it breaks table layout), plus the invisible bidirectional
# controls that reorder what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object) -> str:
    """``value`` as text with every control character shown as an escape (for rich ``Text``, which does not
    parse markup)."""
    return _UNPRINTABLE.sub(_escape_char, str(value))


def safe(value: object) -> str:
    """``value`` as text to put inside a rich markup string: control characters escaped, markup escaped."""
    return escape(plain(value))


@contextmanager
def progress_bar(title: str, out: Console | None = None) -> Iterator[Callable[[str, int, int], None]]:
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
