"""Files that may hold users' data are created for their owner only: folders 0700, files 0600.

Reject files, the quality report, the local server's store, its logs and the bulk importer's files all hold
account ids, device fingerprints and the like; nobody else on the machine needs to read them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
#: The process umask that gives files and folders created by a child process (the JVM) the same modes.
PRIVATE_UMASK: Final = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 folders (an existing ``path`` is set to 0700 too).

    Returns:
        ``path``.
    """
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return Path(path)


@contextmanager
def open_private(path: Path) -> Iterator[IO[str]]:
    """Open ``path`` for writing UTF-8 text (``newline=""``: the writer chooses line ends), created or truncated
    with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # a file that already existed keeps its old mode through os.open
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        yield f


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, the file created or truncated with mode 0600."""
    with open_private(path) as f:
        f.write(text)
