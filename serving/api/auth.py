"""Who may call the API: bearer keys from the environment, compared in constant time; where it may listen."""

from __future__ import annotations

import hmac
import ipaddress
import socket

from pydantic import SecretStr

from graph.errors import ConfigurationError


def key_matches(presented: str, keys: list[SecretStr]) -> bool:
    """True when ``presented`` is one of ``keys``.

    Every key is compared (``hmac.compare_digest``, constant time per key) whatever matched, so the time taken
    does not tell which key, or how much of one, was right.
    """
    given = presented.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.get_secret_value().encode("utf-8"))
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent or of another scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() != "localhost":
        return False
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


def check_bind(host: str, keys: list[SecretStr]) -> None:
    """Refuse to listen beyond this machine without an API key.

    Raises:
        ConfigurationError: ``host`` is not a loopback address and no key is configured.
    """
    if not keys and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to listen on {host}: no API key is configured. Set RINGWATCH_API_KEYS (comma-separated "
            "keys of 16+ characters) or bind 127.0.0.1"
        )
