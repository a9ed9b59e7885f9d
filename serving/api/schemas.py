"""The API's request and response bodies: strict (unknown fields refused), bounded, with examples for ``/docs``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: An account id as a client sends it: 1–128 characters, no control characters. It only ever reaches Neo4j as a
#: ``$parameter``; the bound is there to keep requests small.
AccountIdText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Decision = Literal["allow", "review", "block"]
#: The input contract's event tables the API takes (``labels`` come from the review team's batch files).
EventTable = Literal["accounts", "logins", "card_events", "transfers", "promo_redemptions", "withdrawals"]
CellValue = Annotated[str, StringConstraints(max_length=512)] | int | float | bool | None

EXAMPLE_SCORES: dict[str, Any] = {"collusion": 0.91, "promo_abuse": 0.04, "bot_farm": 0.12}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreRequest(Strict):
    """Score one account live."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"account_id": "acc_000123"}]})

    account_id: AccountIdText


class AccountScoreOut(Strict):
    """One account's score and the decision it leads to."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_000123",
                    "scores": EXAMPLE_SCORES,
                    "score": 0.91,
                    "label": "collusion",
                    "thresholds": {"collusion": 0.42, "promo_abuse": 0.5, "bot_farm": 0.37},
                    "decision": "block",
                    "reasons": ["Device d-77 shared with 4 risky accounts (2 known fraud) among 5 users"],
                    "model_version": "ringwatch-risk/3",
                    "computed_at": "2026-12-07T10:00:00.123Z",
                    "degraded": False,
                    "score_age_s": 0.0,
                }
            ]
        },
    )

    account_id: str
    scores: dict[str, float]
    score: float
    label: str
    thresholds: dict[str, float]
    decision: Decision
    reasons: list[str]
    model_version: str
    computed_at: str = Field(description="when the score was computed (ISO 8601, UTC)")
    degraded: bool = Field(description="true: Neo4j was unreachable; the score is the last batch run's")
    score_age_s: float = Field(description="seconds since the score was computed (0 for a live score)")


class EventRequest(Strict):
    """One event in the input contract's row shape: the table it belongs to and its columns."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "table": "logins",
                    "row": {
                        "account_id": "acc_000123",
                        "ts": "2026-12-07T09:59:58Z",
                        "ip": "203.0.113.7",
                        "device_id": "dev-5521",
                        "user_agent": "Mozilla/5.0",
                    },
                }
            ]
        },
    )

    table: EventTable
    row: dict[Annotated[str, StringConstraints(max_length=64)], CellValue] = Field(max_length=32)


class EventOut(Strict):
    """What became of an event, and the decision on its account."""

    event_id: str = Field(description="the content hash of the event's rows: the idempotency key")
    written: bool = Field(description="false when this event was already written (a retried request)")
    account: AccountScoreOut


class ProblemOut(Strict):
    """An error: what went wrong, in a line; ``rule`` names the validation rule broken (422)."""

    error: str
    rule: str | None = None
    details: list[dict[str, Any]] | None = None


class HealthOut(Strict):
    status: Literal["ok"]


class ReadyOut(Strict):
    ready: bool
    neo4j: bool
    model_loaded: bool
    model_version: str | None
    degraded: bool
    cache_scored_at: str | None = Field(default=None, description="when the fallback plan was scored")
    detail: str | None = None


class ReloadOut(Strict):
    model_version: str
    previous_version: str | None
    seconds: float
