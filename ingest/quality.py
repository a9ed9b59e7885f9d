"""The data-quality summary of a run: counts, reject reasons, null rates and sharing outliers.

Outliers are flagged against the run's own distribution ("far above the usual"): a value is flagged when it
exceeds ``median + 10 × MAD`` (MAD floored at 1) and is at least ``min_count``. Identifiers such as a
carrier NAT IP are *expected* to show up here; the list is for an analyst to look at, not a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ingest.validate import TableValidation

TOP_N = 10


def sharing_outliers(pairs: pd.DataFrame, entity: str, min_count: int = 5) -> dict[str, Any]:
    """Flag identifiers used by far more distinct accounts than usual.

    Args:
        pairs: frame with columns ``account_id`` and ``entity``.
        entity: the identifier column.
        min_count: never flag below this many accounts.

    Returns:
        ``{"median", "threshold", "flagged", "top": [{"id", "accounts"}…]}``
    """
    if pairs.empty:
        return _nothing_flagged()
    per = pairs.drop_duplicates().groupby(entity, sort=False)["account_id"].size()
    return _flag(per, min_count)


def _nothing_flagged() -> dict[str, Any]:
    return {"median": 0.0, "threshold": None, "flagged": 0, "top": []}


def _flag(per: pd.Series, min_count: int) -> dict[str, Any]:
    values = per.to_numpy(dtype=float)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    threshold = max(median + 10 * max(mad, 1.0), float(min_count))
    flagged = per[per >= threshold].sort_values(ascending=False, kind="stable")
    return {
        "median": median,
        "threshold": threshold,
        "flagged": int(len(flagged)),
        "top": [{"id": str(k), "accounts": int(v)} for k, v in flagged.head(TOP_N).items()],
    }


def signup_bursts(accounts: pd.DataFrame, min_count: int = 5) -> dict[str, Any]:
    """Flag (signup IP, hour) cells with far more signups than usual."""
    if accounts.empty:
        return _nothing_flagged()
    hour = accounts["created_at"].dt.floor("h").dt.strftime("%Y-%m-%dT%H:00Z")
    per = accounts.groupby([accounts["signup_ip"], hour], sort=False).size()
    per.index = [f"{ip} @ {h}" for ip, h in per.index]
    return _flag(per, min_count)


def quality_summary(
    validations: Mapping[str, TableValidation],
    raw_null_rates: Mapping[str, dict[str, float]],
    graph_rows: Mapping[str, pd.DataFrame],
) -> dict[str, Any]:
    """The run's data-quality summary (JSON-ready).

    Args:
        validations: per table, its validation outcome.
        raw_null_rates: per table, the share of empty values per column as read.
        graph_rows: the rows the run writes (for stub and sharing counts).
    """
    tables = {}
    for name, v in validations.items():
        tables[name] = {
            "read": v.read,
            "accepted": len(v.accepted),
            "rejected": len(v.rejects),
            "balanced": v.read == len(v.accepted) + len(v.rejects),
            "reject_reasons": v.reject_reasons,
            "null_rates": raw_null_rates.get(name, {}),
        }
    outliers: dict[str, Any] = {}
    for rel, label in (
        ("USED_DEVICE", "accounts_per_device"),
        ("USED_IP", "accounts_per_ip"),
        ("USED_CARD", "accounts_per_card"),
        ("WITHDREW_TO", "accounts_per_wallet"),
    ):
        rows = graph_rows.get(rel)
        if rows is not None:
            pairs = pd.DataFrame({"account_id": rows["src"], "entity": rows["dst"]})
            result = sharing_outliers(pairs, "entity")
            if rel == "USED_CARD":  # card keys are hashes; show a short prefix only
                for item in result["top"]:
                    item["id"] = item["id"][:12] + "…"
            outliers[label] = result
    if "accounts" in validations:
        outliers["signups_per_ip_hour"] = signup_bursts(validations["accounts"].accepted)
    stubs = graph_rows.get("Account.stub")
    return {
        "tables": tables,
        "unknown_account_references": int(len(stubs)) if stubs is not None else 0,
        "outliers": outliers,
    }


def null_rates(raw: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, float]:
    if raw.empty:
        return {c: 0.0 for c in columns}
    return {c: round(float(raw[c].isna().mean()), 6) for c in columns}
