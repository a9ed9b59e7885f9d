"""One settings object for every stage, read from the environment (and an optional `.env`).

Secrets (the Neo4j password, the hash key) only ever come from the environment or from files the project
writes in its local data folder; never from the repository.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from graph.errors import ConfigurationError


class Settings(BaseSettings):
    """ringwatch's configuration.

    Environment variables (all optional):
        NEO4J_URI: an existing server to use (``neo4j://…``, ``bolt://…``, ``neo4j+s://…``). When set, no
            command starts a local server.
        NEO4J_USERNAME (or NEO4J_USER): defaults to ``neo4j``.
        NEO4J_PASSWORD: for the local server, the password it is created with; otherwise one is generated
            on first start and kept in ``<data_dir>/neo4j/password``.
        NEO4J_DATABASE: defaults to ``neo4j``.
        RINGWATCH_HASH_KEY: the key for keyed hashes of cards, emails and phones.
        RINGWATCH_DATA_DIR / RINGWATCH_CACHE_DIR: local state (server data, password, demo key) and
            downloads (Neo4j jars). Default ``./.ringwatch/data`` and ``~/.cache/ringwatch``.
        RINGWATCH_BOLT_PORT / RINGWATCH_HTTP_PORT: ports of the local server (7687 / 7474).
        MLFLOW_TRACKING_URI: the MLflow tracking server and registry; default a SQLite store under the data
            folder.
        RAY_ADDRESS: a Ray cluster to train and score on; default a local Ray started for the run.
        RINGWATCH_DEBUG: ``1`` shows the traceback of an unexpected error (and debug lines in the log).
        RINGWATCH_LOG_LEVEL: the least severe log records shown on standard error (default ``WARNING``; the
            log file under the data folder always keeps ``INFO`` and above).
        RINGWATCH_ALERT_WEBHOOK_URL: where monitoring alerts are POSTed (Slack-compatible JSON); unset: none.
        RINGWATCH_MONITOR_CONFIG: a TOML or JSON file overriding the monitor's alert rules and retraining
            policy (see :mod:`serving.monitor.config`).

    No other module reads these variables from the environment: everything gets them from here.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    neo4j_uri: str | None = Field(default=None, validation_alias="NEO4J_URI")
    neo4j_username: str = Field(default="neo4j", validation_alias=AliasChoices("NEO4J_USERNAME", "NEO4J_USER"))
    neo4j_password: SecretStr | None = Field(default=None, validation_alias="NEO4J_PASSWORD")
    neo4j_database: str = Field(default="neo4j", validation_alias="NEO4J_DATABASE")
    hash_key: SecretStr | None = Field(default=None, validation_alias="RINGWATCH_HASH_KEY")
    data_dir: Path = Field(default=Path(".ringwatch/data"), validation_alias="RINGWATCH_DATA_DIR")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "ringwatch", validation_alias="RINGWATCH_CACHE_DIR")
    bolt_port: int = Field(default=7687, ge=1, le=65535, validation_alias="RINGWATCH_BOLT_PORT")
    http_port: int = Field(default=7474, ge=1, le=65535, validation_alias="RINGWATCH_HTTP_PORT")
    neo4j_heap: str = Field(default="2g", validation_alias="RINGWATCH_NEO4J_HEAP")
    neo4j_pagecache: str = Field(default="2g", validation_alias="RINGWATCH_NEO4J_PAGECACHE")
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    ray_address: str | None = Field(default=None, validation_alias="RAY_ADDRESS")
    debug: bool = Field(default=False, validation_alias="RINGWATCH_DEBUG")
    log_level: str = Field(default="WARNING", validation_alias="RINGWATCH_LOG_LEVEL")
    alert_webhook_url: SecretStr | None = Field(default=None, validation_alias="RINGWATCH_ALERT_WEBHOOK_URL")
    monitor_config: Path | None = Field(default=None, validation_alias="RINGWATCH_MONITOR_CONFIG")

    @field_validator("debug", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        """``RINGWATCH_DEBUG=`` (set but empty) means off, as an unset variable does."""
        return False if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"RINGWATCH_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
        return level

    @property
    def uses_external_server(self) -> bool:
        """True when the user pointed ringwatch at their own server with NEO4J_URI."""
        return bool(self.neo4j_uri)

    @cached_property
    def neo4j_home(self) -> Path:
        """Folder of the locally managed server (config, data, logs, password)."""
        return self.data_dir.resolve() / "neo4j"

    @property
    def local_uri(self) -> str:
        """The local server's Bolt address."""
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def log_dir(self) -> Path:
        """Folder of the rotating JSON-lines log (``ringwatch.jsonl``)."""
        return self.data_dir.resolve() / "logs"


def load_settings() -> Settings:
    """Read the settings from the environment now (never at import time).

    Raises:
        ConfigurationError: a variable holds a value that is not allowed (named in the message).
    """
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from e
