"""Writing rejected rows and the quality report: safe to open in a spreadsheet, readable back exactly.

Reject files are read by analysts, often in a spreadsheet, and their values come from whoever filled the input:
- a value starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'`` (the OWASP
  rule against CSV injection: such a cell would otherwise run as a formula), unless it is a plain number
  such as ``-3`` (a negative amount is worth seeing as it was);
- every field is quoted, so commas, quotes, line feeds and bare carriage returns inside a value never split a
  row: reading a reject file with the same reader as the input (``pandas.read_csv``, text, empty = missing)
  gives back exactly the rows written;
- personal data is already masked in the rows (:mod:`ingest.pii`); the files are created 0600 in a 0700 folder.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from graph.private_files import private_dir, write_private
from ingest.validate import TableValidation

FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
QUALITY_FILE: Final = "quality.json"


def reject_file(rejects_dir: Path, table: str) -> Path:
    """Where the rejected rows of ``table`` go."""
    return rejects_dir / f"{table}.rejects.csv"


def neutralise(value: object) -> object:
    """A cell value that a spreadsheet shows as text rather than runs as a formula (see the module docstring)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def reject_csv(rows: pd.DataFrame) -> str:
    """The text of a reject file: formula prefixes neutralised, every field quoted."""
    safe = rows.astype("string").apply(lambda column: column.map(neutralise, na_action="ignore"))
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    return buffer.getvalue()


def read_reject_file(path: Path) -> pd.DataFrame:
    """A reject file read back with the reader of the input tables (every value text, empty = missing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def write_rejects_folder(
    validations: Mapping[str, TableValidation], quality: Mapping[str, Any], rejects_dir: Path
) -> None:
    """One CSV of rejected rows per table (header only when none), plus ``quality.json``, all owner-only."""
    private_dir(rejects_dir)
    for name, v in validations.items():
        write_private(reject_file(rejects_dir, name), reject_csv(v.rejects))
    write_private(rejects_dir / QUALITY_FILE, json.dumps(quality, indent=2, default=str) + "\n")
