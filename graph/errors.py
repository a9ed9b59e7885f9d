"""The project's exceptions: one root, one class per kind of failure a user can act on."""

from __future__ import annotations


class RingwatchError(Exception):
    """Root of every error ringwatch raises on purpose; the CLI prints these without a traceback."""


class ConfigurationError(RingwatchError):
    """A setting is missing or inconsistent (for example no hash key for card data)."""


class Neo4jServerError(RingwatchError):
    """The local Neo4j server could not be installed, started, reached or stopped."""


class GraphWriteError(RingwatchError):
    """A write to Neo4j failed; the message says how much was committed and how to resume."""


class InputContractError(RingwatchError):
    """An input table breaks the contract as a whole (missing column, unreadable file)."""


class ModelError(RingwatchError):
    """A model could not be trained, loaded or run (incompatible graph, failed workers, missing scores)."""
