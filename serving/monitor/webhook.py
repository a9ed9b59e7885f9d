"""Alert delivery to a webhook: one Slack-compatible JSON POST per monitoring run, retried with back-off.

The body is Slack's incoming-webhook format (``{"text": …, "blocks": […]}``), which Slack, Mattermost,
Microsoft Teams' Slack-compatible connectors and most chat bridges accept; a plain HTTP endpoint gets the
alerts themselves under ``"alerts"`` too. A failed delivery (connection refused, timeout, an HTTP status of
400 or more after every retry) never raises: it returns what happened, and the caller records it on the
alerts (their ``delivery`` property, the alert log and the log file) — the alerts themselves are already
written to Neo4j and the alert log before delivery is tried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from graph.logs import logger
from serving.monitor.config import WebhookPolicy

log = logger(__name__)


@dataclass(frozen=True)
class Delivery:
    """How a delivery went: ``sent``, ``failed: <why>`` or ``off`` (no webhook configured); attempts made."""

    status: str
    attempts: int

    @property
    def ok(self) -> bool:
        return self.status in ("sent", "off")


def slack_payload(alerts: Sequence[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """The POST body: a Slack ``text`` summary, one ``section`` block per alert, and the alerts as data."""
    lines = [
        f"*{a['severity'].upper()}* `{a['rule']}`{' ' + a['subject'] if a.get('subject') else ''}: {a['message']}"
        for a in alerts
    ]
    text = f"ringwatch monitor {run_id}: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    return {
        "text": text + "\n" + "\n".join(lines),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}} for line in [text, *lines]][:50],
        "alerts": list(alerts),
    }


def deliver(
    url: str | None,
    payload: dict[str, Any],
    policy: WebhookPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``payload`` to ``url``, retrying ``policy.retries`` times with doubling back-off; never raises.

    Args:
        url: the webhook (None: delivery is off).
        payload: the JSON body.
        policy: retries, first back-off, timeout.
        sleep: waits between attempts (tests pass a recorder).
    """
    if not url:
        return Delivery("off", 0)
    why = ""
    attempts = 0
    for attempt in range(policy.retries + 1):
        attempts = attempt + 1
        try:
            response = httpx.post(url, json=payload, timeout=policy.timeout_seconds)
            if response.status_code < 400:
                return Delivery("sent", attempts)
            why = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the endpoint refuses this request; retrying will not change that
        except httpx.HTTPError as e:
            why = f"{type(e).__name__}: {e}"
        if attempt < policy.retries:
            sleep(policy.backoff_seconds * 2**attempt)
    log.warning("alert webhook delivery failed after %d attempt(s): %s", attempts, why)
    return Delivery(f"failed: {why}", attempts)
