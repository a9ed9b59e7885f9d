"""Validation of one input table: every bad row found (lazily), reasons named, nothing lost.

``accepted + rejected == read`` for every table, always. Rejected rows keep their original values, with
personal data masked (card numbers to BIN and last four, emails and phones starred, wherever they appear:
:func:`ingest.pii.redact_rejects`), plus ``_row`` (the data row's number in the file, counting from 1) and
``reason`` (``field: rule`` items joined by ``; ``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from ingest.contract import ACCOUNTS, LABELS, TRANSFERS, TableContract
from ingest.pii import redact_rejects
from ingest.read import ROW
from ingest.rules import SCHEMAS, canonical_ips, column_memo, memoised, parse_amounts, parse_timestamps

REASON = "reason"


@dataclass
class TableValidation:
    """The outcome of validating one table.

    Attributes:
        table: the table's name.
        read: rows read from the file.
        accepted: accepted rows, typed (timestamps as UTC, amounts as float, canonical IPs).
        rejects: rejected rows as read (personal data masked), with ``_row`` and ``reason``.
    """

    table: str
    read: int
    accepted: pd.DataFrame
    rejects: pd.DataFrame

    @property
    def reject_reasons(self) -> dict[str, int]:
        """How many rows broke each rule (a row may break several)."""
        if self.rejects.empty:
            return {}
        items = self.rejects[REASON].str.split("; ").explode()
        # Duplicate reasons name the first row; count them under one rule.
        items = items.str.replace(r"duplicate of row \d+", "duplicate of an earlier row", regex=True)
        return {str(k): int(v) for k, v in items.value_counts().items()}


def validate_table(raw: pd.DataFrame, contract: TableContract) -> TableValidation:
    """Validate a table read by :func:`ingest.read.read_table` against its contract.

    Args:
        raw: the table as text, with the ``_row`` column.
        contract: the table's contract.

    Returns:
        The accepted rows (typed) and the rejected rows with reasons.
    """
    with column_memo(raw):  # a costly rule (parsing a timestamp, scanning for personal data) runs once per column
        problems: list[pd.Series] = [_schema_problems(raw, contract)]
        problems.extend(cross_field_problems(raw, contract))
        reasons = _join_reasons(problems, raw.index)
        bad = reasons.notna()
        dup = _duplicate_problems(raw.loc[~bad], contract)
        reasons = reasons.fillna(dup)
        bad = reasons.notna()

        rejects = redact_rejects(raw.loc[bad], contract)
        rejects[REASON] = reasons[bad]
        accepted = _typed(raw.loc[~bad], contract)
    return TableValidation(contract.name, len(raw), accepted, rejects.reset_index(drop=True))


def _schema_problems(raw: pd.DataFrame, contract: TableContract) -> pd.Series:
    try:
        SCHEMAS[contract.name].validate(raw, lazy=True)
    except pa.errors.SchemaErrors as e:
        cases = e.failure_cases
        cases = cases[cases["index"].notna()]
        rule = cases["check"].astype(str).map(_rule_text)
        reason = cases["column"].astype(str) + ": " + rule
        return pd.Series(reason.to_numpy(), index=cases["index"].astype("int64").to_numpy())
    return pd.Series(dtype="string")


def _rule_text(check: str) -> str:
    if check == "not_nullable":
        return "required value is missing"
    return check


def cross_field_problems(raw: pd.DataFrame, contract: TableContract) -> list[pd.Series]:
    """Per rule that spans fields (a transfer to oneself, a self-referral), the rows that break it, with the
    message a rejected row carries; batch validation and the online API's one-row path share them."""
    out: list[pd.Series] = []
    if contract is TRANSFERS:
        same = raw["from_account_id"].notna() & (raw["from_account_id"] == raw["to_account_id"])
        out.append(pd.Series("to_account_id: must differ from from_account_id", index=raw.index[same.fillna(False)]))
    if contract is ACCOUNTS:
        same = raw["referrer_id"].notna() & (raw["referrer_id"] == raw["account_id"])
        out.append(pd.Series("referrer_id: an account cannot refer itself", index=raw.index[same.fillna(False)]))
    return out


def _duplicate_problems(rows: pd.DataFrame, contract: TableContract) -> pd.Series:
    """Rows repeating an earlier accepted row: the same account (accounts) or the same event (others)."""
    key = ["account_id"] if contract is ACCOUNTS else list(contract.columns)
    if contract is LABELS:
        key = ["account_id", "label", "source", "ts"]
    # Rows that repeat on every key column repeat on the time alone: look for whole repeats only among the rows
    # whose time repeats (a few), instead of over every column of every row.
    time = next((c for c in ("ts", "created_at") if c in key and len(key) > 1), None)
    if time is not None:
        rows = rows.loc[rows.duplicated(subset=[time], keep=False)]
    dup = rows.duplicated(subset=key, keep="first")
    if not dup.any():
        return pd.Series(dtype="string")
    first_row = rows.groupby(key, dropna=False, sort=False)[ROW].transform("first")
    text = "duplicate of row " + first_row[dup].astype(str)
    field = "account_id" if contract is ACCOUNTS else "row"
    return (field + ": " + text).astype("string")


def _join_reasons(problems: list[pd.Series], index: pd.Index) -> pd.Series:
    nonempty = [p for p in problems if len(p)]
    if not nonempty:
        return pd.Series(pd.NA, index=index, dtype="string")
    allp = pd.concat(nonempty)
    joined = allp.groupby(level=0, sort=True).agg(lambda r: "; ".join(dict.fromkeys(r)))
    return joined.reindex(index).astype("string")


def _typed(rows: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    typed = rows.copy()
    for column in ("created_at", "ts"):
        if column in typed:
            typed[column] = memoised(parse_timestamps, typed[column])
    if "amount" in typed:
        typed["amount"] = memoised(parse_amounts, typed["amount"])
    if "kyc_level" in typed:
        typed["kyc_level"] = typed["kyc_level"].astype("int8")
    if "country" in typed:
        typed["country"] = typed["country"].str.upper()
    if "asset" in typed:
        typed["asset"] = typed["asset"].str.upper()
    for column in ("ip", "signup_ip"):
        if column in typed:
            typed[column] = memoised(canonical_ips, typed[column])
    return typed.reset_index(drop=True)
