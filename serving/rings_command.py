"""``ringwatch rings``: group the graph's flagged accounts into rings and print the top ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from graph.settings import Settings
from serving.cli_support import open_graph
from serving.console import console, safe
from serving.ring_grouping import GroupingPolicy
from serving.rings import run_rings


def run_rings_command(settings: Settings, policy: GroupingPolicy | None = None, quiet: bool = False) -> dict[str, Any]:
    with open_graph(settings) as driver, console.status("grouping risky accounts into rings…"):
        summary = run_rings(driver, settings.neo4j_database, policy)
    if not quiet:
        print_rings(summary)
    return summary


def print_rings(summary: dict[str, Any], limit: int = 10) -> None:
    table = Table(title=f"top rings of {summary['rings']:,} ({safe(summary['rings_run_id'])}, from "
                        f"{safe(summary['scoring_run_id'])})")
    for column in ("ring", "kind", "size", "score", "active", "evidence"):
        table.add_column(column, justify="right" if column in ("size", "score") else "left")
    for ring in summary["top"][:limit]:
        span = (f"{datetime.fromtimestamp(ring['first_seen'] / 1000, UTC):%Y-%m-%d} → "
                f"{datetime.fromtimestamp(ring['last_seen'] / 1000, UTC):%Y-%m-%d}")
        table.add_row(safe(ring["ring_id"]), safe(ring["kind"]), str(ring["size"]), f"{ring['score']:.3f}", span,
                      safe(ring["evidence"]))  # evidence names shared identifiers: data, not markup
    console.print(table)
    console.print(f"{summary['candidates']:,} candidates ({summary['flagged_accounts']:,} flagged on their own score) "
                  f"→ {summary['rings']:,} rings ({summary['ring_members']:,} members, {summary['admitted']:,} of them "
                  f"flagged as ring members; {summary['kept_ids']} kept their id, {summary['new']} new, "
                  f"{summary['retired']} retired) in {summary['seconds']} s")
