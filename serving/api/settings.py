"""The online API's settings, read from the environment (secrets never come from anywhere else).

Environment variables (all optional):
    RINGWATCH_API_KEYS: bearer API keys, comma-separated (several, so a key can be rotated without downtime).
        With none, the server only binds a loopback address.
    RINGWATCH_API_MODEL: ``champion`` (the registry's alias, default) or a model folder.
    RINGWATCH_API_MAX_BODY_BYTES: the largest request body accepted (default 16 384).
    RINGWATCH_API_MAX_IN_FLIGHT: requests handled at once; more are refused with 503 + Retry-After (default 16).
    RINGWATCH_API_RETRY_AFTER_S: the Retry-After of that 503 (default 1).
    RINGWATCH_API_NEO4J_TIMEOUT_S: every Neo4j call's timeout (default 2.0).
    RINGWATCH_API_EXPAND_CAP: identifiers used by more accounts are not expanded when an account is recomputed,
        or when no feature store serves the model (default: the model's super-node cap, 500; lower is faster).
        Accounts scored from the feature store do not depend on it (their neighbours' embeddings are stored).
    RINGWATCH_API_REVIEW_AT / RINGWATCH_API_BLOCK_AT: JSON objects ``{"threat": score}``: a threat's score at or
        above its ``review`` band gives ``review``, at or above its ``block`` band ``block``. Default: review at
        the model's threshold for the threat, block at 0.9 (or the threshold, if higher).
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from graph.errors import ConfigurationError
from graph.schema import THREATS

#: Default block band (a threat's threshold above it wins).
DEFAULT_BLOCK_AT = 0.9


def _bands(value: object) -> dict[str, float]:
    if value is None or value == "" or value == {}:
        return {}
    raw = json.loads(value) if isinstance(value, str) else value
    if not isinstance(raw, dict):
        raise ValueError("must be a JSON object {threat: score}")
    unknown = sorted(set(raw) - set(THREATS))
    if unknown:
        raise ValueError(f"names threats the model does not score: {unknown} (known: {list(THREATS)})")
    out = {str(k): float(v) for k, v in raw.items()}
    bad = {k: v for k, v in out.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"scores must lie in [0, 1], got {bad}")
    return out


class ApiSettings(BaseSettings):
    """The API's configuration (see the module docstring)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list, validation_alias="RINGWATCH_API_KEYS")
    model: str = Field(default="champion", validation_alias="RINGWATCH_API_MODEL")
    max_body_bytes: int = Field(default=16_384, ge=256, le=10_000_000, validation_alias="RINGWATCH_API_MAX_BODY_BYTES")
    max_in_flight: int = Field(default=16, ge=1, le=10_000, validation_alias="RINGWATCH_API_MAX_IN_FLIGHT")
    retry_after_s: int = Field(default=1, ge=1, le=3600, validation_alias="RINGWATCH_API_RETRY_AFTER_S")
    neo4j_timeout_s: float = Field(default=2.0, gt=0, le=600, validation_alias="RINGWATCH_API_NEO4J_TIMEOUT_S")
    expand_cap: int | None = Field(default=None, ge=1, le=1_000_000, validation_alias="RINGWATCH_API_EXPAND_CAP")
    review_at: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias="RINGWATCH_API_REVIEW_AT"
    )
    block_at: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias="RINGWATCH_API_BLOCK_AT"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("api_keys", mode="after")
    @classmethod
    def _long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        short = [i for i, k in enumerate(value) if len(k.get_secret_value()) < 16]
        if short:
            raise ValueError(f"keys must be at least 16 characters (key number {short[0] + 1} is shorter)")
        return value

    @field_validator("review_at", "block_at", mode="before")
    @classmethod
    def _parse_bands(cls, value: object) -> object:
        return _bands(value)

    def bands(self, thresholds: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Per threat, ``(review, block)`` score bands for a model with ``thresholds``."""
        out = {}
        for threat in THREATS:
            review = self.review_at.get(threat, min(float(thresholds[threat]), 1.0))
            block = self.block_at.get(threat, max(DEFAULT_BLOCK_AT, review))
            out[threat] = (review, max(block, review))
        return out


def load_api_settings() -> ApiSettings:
    """Read the API's settings now.

    Raises:
        ConfigurationError: a variable holds a value that is not allowed (named in the message).
    """
    try:
        return ApiSettings()
    except (ValidationError, json.JSONDecodeError) as e:
        problems = (
            "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
            if isinstance(e, ValidationError)
            else str(e)
        )
        raise ConfigurationError(f"invalid API settings: {problems}") from e
