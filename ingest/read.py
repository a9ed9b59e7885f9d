"""Finding and reading the input tables of a folder (CSV or Parquet), as text, with row numbers kept."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from graph.errors import InputContractError
from ingest.contract import TABLES, TRUTH_COLUMNS, TableContract
from ingest.pii import redact_text

#: Column added to every table read: the data row's number in its file, counting from 1. Not a line number: a
#: quoted CSV field may span several lines.
ROW = "_row"
SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class TableFile:
    contract: TableContract
    path: Path


def find_tables(folder: Path) -> list[TableFile]:
    """The contract tables present in ``folder``, in processing order.

    Raises:
        InputContractError: the folder does not exist, holds none of the tables, or holds one table in
            both formats (which would be ambiguous).
    """
    if not folder.is_dir():
        raise InputContractError(f"input folder {folder} does not exist or is not a folder")
    found: list[TableFile] = []
    for contract in TABLES:
        paths = [folder / f"{contract.name}{s}" for s in SUFFIXES if (folder / f"{contract.name}{s}").exists()]
        if len(paths) > 1:
            raise InputContractError(
                f"{folder}: table {contract.name!r} is present as both {paths[0].name} and {paths[1].name}; keep one"
            )
        if paths:
            found.append(TableFile(contract, paths[0]))
    if not found:
        names = ", ".join(f"{t.name}.csv|.parquet" for t in TABLES)
        raise InputContractError(f"{folder} holds none of the input tables ({names})")
    return found


def read_table(table: TableFile) -> pd.DataFrame:
    """Read one table with every contract column as nullable text, plus the ``_row`` column.

    Empty strings become missing values. Extra columns are dropped. Typed Parquet columns are turned into
    their text form (zoned timestamps as ISO-8601), so that validation treats both formats alike.

    Raises:
        InputContractError: the file cannot be read, a column name appears twice, or a required column is
            missing.
    """
    path, contract = table.path, table.contract
    try:
        _refuse_duplicate_columns(path, _csv_header(path) if path.suffix == ".csv" else pq.read_schema(path).names)
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = _parquet_as_text(path, contract)
    except InputContractError:
        raise
    except Exception as e:  # pandas/pyarrow raise many types for a broken file
        raise InputContractError(f"{path}: cannot read the file: {redact_text(str(e))}") from e
    missing = [c for c in contract.columns if c not in frame.columns]
    if missing:
        raise InputContractError(
            f"{path}: table {contract.name!r} is missing required column(s) {', '.join(missing)}; "
            f"expected {', '.join(contract.columns)}"
        )
    frame = frame.loc[:, list(contract.columns)].astype("string")
    for column in contract.columns:
        frame[column] = frame[column].str.strip().replace("", pd.NA)
    frame.insert(0, ROW, range(1, len(frame) + 1))
    return frame


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        return next(csv.reader(f), [])


def _refuse_duplicate_columns(path: Path, names: list[str]) -> None:
    """A repeated column name would make one of the columns win silently; the file is ambiguous."""
    repeated = [name for name, n in Counter(names).items() if n > 1]
    if repeated:
        shown = ", ".join(repr(redact_text(name)) for name in repeated)
        raise InputContractError(f"{path}: column name(s) {shown} appear more than once; keep one of each")


def _parquet_as_text(path: Path, contract: TableContract) -> pd.DataFrame:
    table = pq.read_table(path)
    columns: dict[str, pd.Series] = {}
    for name in table.column_names:
        if name not in contract.columns:
            continue
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            values = column.to_pandas()
            if column.type.tz is None:
                # No zone: keep the text without one so validation rejects it, as it would in a CSV.
                columns[name] = values.dt.strftime("%Y-%m-%dT%H:%M:%S").astype("string")
            else:
                columns[name] = values.map(lambda t: t.isoformat() if pd.notna(t) else None).astype("string")
        else:
            columns[name] = _arrow_text(column)
    return pd.DataFrame(columns)


def _arrow_text(column: pa.ChunkedArray) -> pd.Series:
    """A typed Parquet column as the text a CSV would hold: Arrow's own formatting, so a whole float is written
    without a fraction (``kyc_level`` 1.0 → ``1``) and an integer column with gaps stays integral."""
    try:
        return pc.cast(column, pa.string()).to_pandas().astype("string")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column.to_pandas().astype("string")


def read_truth(path: Path) -> pd.DataFrame:
    """The truth file of a generated exchange (``account_id``, ``label``, …), every value as text.

    Raises:
        InputContractError: the file is missing, empty, not CSV, or lacks ``account_id`` or ``label``.
    """
    if not path.is_file():
        raise InputContractError(f"truth file {path} does not exist (it is written by `ringwatch generate`)")
    try:
        truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputContractError(f"truth file {path} is not a readable CSV file: {redact_text(str(e))}") from e
    missing = [c for c in TRUTH_COLUMNS[:2] if c not in truth.columns]
    if missing:
        raise InputContractError(
            f"truth file {path} lacks column(s) {', '.join(missing)}; expected {', '.join(TRUTH_COLUMNS)}"
        )
    return truth
