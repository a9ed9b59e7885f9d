"""Detection efficacy from investigators' verdicts: precision per threat, per model version and per week.

Precision of a threat is ``confirmed ÷ (confirmed + false_positive)`` over the verdicts recorded for it (a
verdict counts for the model version of the scoring run that had labelled the account). The *backlog* is the
flagged accounts (any label but ``clear``) with no verdict yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import neo4j

from graph import schema as s
from graph.queries import monitor as q


@dataclass
class Efficacy:
    """What investigators' verdicts say about detection.

    Attributes:
        precision: per threat, ``{"confirmed", "false_positive", "precision"}`` (precision None when unreviewed).
        by_model: per model version, the same per threat.
        by_week: per ISO week (its Monday), the same per threat.
        backlog: per threat, flagged accounts never reviewed.
    """

    precision: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_model: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    by_week: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    backlog: dict[str, int] = field(default_factory=dict)


def read_efficacy(driver: neo4j.Driver, database: str) -> Efficacy:
    """Verdict precision and backlog from the graph (see the module docstring)."""
    records, _, _ = driver.execute_query(q.VERDICT_EFFICACY, database_=database, routing_=neo4j.RoutingControl.READ)
    rows = [dict(r) for r in records]
    backlog, _, _ = driver.execute_query(
        q.VERDICT_BACKLOG, clear=s.CLEAR, database_=database, routing_=neo4j.RoutingControl.READ
    )
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_week: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_model[row["model_version"]].append(row)
        by_week[row["week"]].append(row)
    return Efficacy(
        precision=precision_by_threat(rows),
        by_model={k: precision_by_threat(v) for k, v in sorted(by_model.items())},
        by_week={k: precision_by_threat(v) for k, v in sorted(by_week.items())},
        backlog={t: 0 for t in s.THREATS} | {r["threat"]: int(r["n"]) for r in backlog},
    )


def precision_by_threat(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per threat, counts of each verdict and the precision (None without verdicts).

    Args:
        rows: ``{"threat", "verdict", "n"}`` maps.
    """
    out: dict[str, dict[str, Any]] = {}
    for threat in s.THREATS:
        confirmed = sum(int(r["n"]) for r in rows if r["threat"] == threat and r["verdict"] == s.CONFIRMED)
        wrong = sum(int(r["n"]) for r in rows if r["threat"] == threat and r["verdict"] == s.FALSE_POSITIVE)
        reviewed = confirmed + wrong
        out[threat] = {
            "confirmed": confirmed,
            s.FALSE_POSITIVE: wrong,
            "precision": round(confirmed / reviewed, 6) if reviewed else None,
        }
    return out
