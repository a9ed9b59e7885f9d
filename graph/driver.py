"""The one place a ``neo4j.Driver`` is built. Everything else receives a driver and never builds one."""

from __future__ import annotations

from typing import Any, Final

import neo4j
from neo4j.exceptions import AuthError, ServiceUnavailable

from graph.errors import ConfigurationError, Neo4jServerError
from graph.settings import Settings

PASSWORD_FILE = "password"
#: What to do about a refused password. Never "delete the data folder": that deletes the graph.
WRONG_PASSWORD_ADVICE: Final[str] = (
    "Set NEO4J_PASSWORD to the password the database was created with (a generated one is kept in the "
    "`password` file of the server's home); if it is lost, reset it with Neo4j's admin-password recovery "
    "procedure, which keeps the data"
)


def local_password(settings: Settings) -> str | None:
    """The local server's password: NEO4J_PASSWORD, else the one generated on first start, else None."""
    if settings.neo4j_password is not None:
        return settings.neo4j_password.get_secret_value()
    path = settings.neo4j_home / PASSWORD_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    return None


def open_driver(uri: str, username: str, password: str, **config: Any) -> neo4j.Driver:
    """The only call to ``GraphDatabase.driver`` in the project (the local server's probes use it too)."""
    return neo4j.GraphDatabase.driver(uri, auth=(username, password), user_agent="ringwatch", **config)


def build_driver(settings: Settings, verify: bool = True, **config: Any) -> neo4j.Driver:
    """A driver for NEO4J_URI when set, else for the local server ringwatch manages.

    Args:
        settings: where and how to connect.
        verify: check connectivity and credentials now, so a wrong setting fails here and clearly.
        config: driver settings replacing the defaults (the online API's timeouts and pool size).

    Raises:
        ConfigurationError: no password is known for the server.
        Neo4jServerError: the server cannot be reached or refuses the credentials.
    """
    password: str | None
    if settings.neo4j_uri:
        uri = settings.neo4j_uri
        if settings.neo4j_password is None:
            raise ConfigurationError("NEO4J_URI is set but NEO4J_PASSWORD is not; set both to use your own server")
        password = settings.neo4j_password.get_secret_value()
    else:
        uri = settings.local_uri
        password = local_password(settings)
        if password is None:
            raise Neo4jServerError("the local Neo4j server has not been set up yet: run `ringwatch neo4j start`")
    # Server notifications off: they are query-tuning hints (e.g. "property key does not exist" before a first
    # scoring run), which the driver would log as warnings into every command's output.
    options: dict[str, Any] = {
        "max_connection_pool_size": 8,
        "notifications_min_severity": neo4j.NotificationMinimumSeverity.OFF,
        **config,
    }
    driver = open_driver(uri, settings.neo4j_username, password, **options)
    if verify:
        try:
            driver.verify_connectivity()
        except AuthError as e:
            driver.close()
            advice = (
                "check NEO4J_USERNAME and NEO4J_PASSWORD" if settings.uses_external_server else WRONG_PASSWORD_ADVICE
            )
            raise Neo4jServerError(
                f"Neo4j at {uri} refused the credentials of user {settings.neo4j_username!r}: {advice}"
            ) from e
        except (ServiceUnavailable, OSError) as e:
            driver.close()
            hint = "" if settings.uses_external_server else " (start it with `ringwatch neo4j start`)"
            raise Neo4jServerError(f"Neo4j at {uri} is not answering{hint}: {e}") from e
    return driver
