"""``ringwatch promote MODEL``: make a registered model version the champion — only through the validation gate.

One call:

1. resolves the version (``ringwatch-risk/<n>`` or ``<n>``) and the current champion in the registry;
2. exports the current graph and runs the gate (:func:`gnn.gate.validate_model`) on it: the candidate against
   the champion, on the accounts neither trained on, with the graph's labels (or a truth file);
3. stores the gate's report with the version in MLflow (:func:`gnn.tracking.record_gate`);
4. if the gate passed — or failed and ``force`` is given with a reason — moves the ``champion`` alias and
   records who (``by``, else the operating-system user) and why in MLflow (:func:`gnn.tracking.promote_version`);
5. leaves a ``(:Promotion)`` audit node in the graph in every case: ``promoted``, ``forced`` or ``refused``.

The scoring job loads the ``champion`` alias at the start of each run, so its next run uses the new champion.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import neo4j
import pandas as pd

from gnn.build import risk_graph_from_neo4j
from gnn.estimator import RiskModel
from gnn.gate import GateFailed, GateRules, validate_model
from gnn.tracking import (
    REGISTERED_MODEL,
    champion_version,
    download_version,
    model_version,
    promote_version,
    promoter,
    read_gate,
    record_gate,
    tracking_client,
)
from graph.logs import logger
from graph.queries import governance as q
from graph.runs import Progress
from graph.settings import Settings

log = logger(__name__)

PROMOTED, FORCED, REFUSED = "promoted", "forced", "refused"


@dataclass
class PromotionResult:
    """What ``ringwatch promote`` did.

    Attributes:
        promotion_id: the audit node's id; model_version: the candidate; previous_champion: the one it replaced.
        outcome: ``promoted``, ``forced`` (past a failed gate) or ``refused``.
        by, reason: who and why. gate: the gate's report (:class:`gnn.gate.GateReport` as a dict).
    """

    promotion_id: str
    model_version: str
    previous_champion: str | None
    outcome: str
    by: str
    reason: str
    gate: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote(
    settings: Settings,
    driver: neo4j.Driver,
    model: str,
    *,
    reason: str = "",
    by: str | None = None,
    force: bool = False,
    truth: pd.DataFrame | None = None,
    rules: GateRules | None = None,
    progress: Progress | None = None,
) -> PromotionResult:
    """Run the gate on ``model`` and promote it when it passes (or when forced); see the module docstring.

    Raises:
        ValueError: ``force`` without a ``reason``, or ``model`` is already the champion.
        GateFailed: the gate failed and ``force`` was not given (the refusal is recorded first).
        TrackingError: no such version, or the registry failed.
    """
    if force and not reason.strip():
        raise ValueError("--force needs --reason: say why the gate is overridden")
    client = tracking_client(settings)
    candidate_version = model_version(client, model)
    name = f"{REGISTERED_MODEL}/{candidate_version.version}"
    current = champion_version(client)
    current_name = None if current is None else f"{REGISTERED_MODEL}/{current.version}"
    if current_name == name:
        raise ValueError(f"{name} is already the champion")
    candidate = RiskModel.load(download_version(settings, candidate_version))
    champion = None if current is None else RiskModel.load(download_version(settings, current))
    graph = risk_graph_from_neo4j(driver, settings.neo4j_database, progress=progress)
    report = validate_model(
        candidate, graph, model_version=name, champion=champion, champion_version=current_name, truth=truth, rules=rules
    )
    record_gate(client, str(candidate_version.version), report)
    who = promoter(by)
    outcome = PROMOTED if report.passed else (FORCED if force else REFUSED)
    why = reason.strip() or ("passed the validation gate" if report.passed else "")
    if outcome != REFUSED:
        promote_version(client, str(candidate_version.version), by=who, reason=why, forced=outcome == FORCED)
    result = PromotionResult(
        promotion_id=f"promotion-{uuid.uuid4().hex[:12]}",
        model_version=name,
        previous_champion=current_name,
        outcome=outcome,
        by=who,
        reason=why,
        gate=report.as_dict(),
    )
    record_promotion(driver, settings.neo4j_database, result)
    if outcome == REFUSED:
        raise GateFailed(
            f"{name} was not promoted: the validation gate failed: {'; '.join(report.reasons)}; "
            "fix the model, or override with --force --reason '…' (recorded)"
        )
    log.info("%s %s (was %s) by %s", outcome, name, current_name, who)
    return result


def record_promotion(driver: neo4j.Driver, database: str, result: PromotionResult) -> None:
    """Write the ``(:Promotion)`` audit node of one attempt."""
    gate = result.gate
    driver.execute_query(
        q.RECORD_PROMOTION,
        promotion_id=result.promotion_id,
        props={
            "model_version": result.model_version,
            "previous_champion": result.previous_champion,
            "outcome": result.outcome,
            "forced": result.outcome == FORCED,
            "by": result.by,
            "reason": result.reason,
            "gate": "passed" if gate["passed"] else "failed",
            "gate_reasons": list(gate["reasons"]),
            "gate_champion": gate["champion_version"],
            "gate_labels": gate["labels"],
            "gate_fpr_overall": float(gate["bias"]["overall"]["fpr"]),
        },
        database_=database,
    )


def promotions(driver: neo4j.Driver, database: str, limit: int = 20) -> list[dict[str, Any]]:
    """The audit trail of promotions, newest first."""
    records, _, _ = driver.execute_query(
        q.PROMOTIONS, limit=limit, database_=database, routing_=neo4j.RoutingControl.READ
    )
    return [dict(r["promotion"]) for r in records]


def gate_report_of(settings: Settings, version: str) -> dict[str, Any] | None:
    """The validation gate report stored with a registered version (``ringwatch-risk/<n>``); None for a model
    folder or a version without one.

    Raises:
        TrackingError: the registry could not be read.
    """
    if not version.startswith(f"{REGISTERED_MODEL}/"):
        return None
    return read_gate(tracking_client(settings), version.removeprefix(f"{REGISTERED_MODEL}/"))
