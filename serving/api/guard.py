"""The API's front door (pure ASGI middleware): load shedding, the body size limit, request metrics.

Load shedding: at most ``max_in_flight`` requests are handled at once; one more is answered at once with 503
and ``Retry-After`` instead of waiting in a queue that grows without bound (the client retries, or another
replica takes it). ``/healthz`` and ``/metrics`` are never shed, so a busy server still shows it is alive.
The body limit refuses a larger declared ``Content-Length`` before reading anything, and stops reading a
chunked body once it passes the limit.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.metrics import ApiMetrics

#: Paths never shed.
NOT_SHED = frozenset({"/healthz", "/metrics"})


class RequestGuard:
    """Bounded concurrency, a request size limit and per-route metrics around an ASGI app."""

    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, max_body_bytes: int, retry_after_s: int, metrics: ApiMetrics
    ) -> None:
        if max_in_flight < 1 or max_body_bytes < 1:
            raise ValueError(f"max_in_flight and max_body_bytes must be >= 1, got {max_in_flight}, {max_body_bytes}")
        self.app, self.max_in_flight, self.max_body = app, max_in_flight, max_body_bytes
        self.retry_after, self.metrics = retry_after_s, metrics
        self.in_flight = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        status: dict[str, int] = {}

        async def send_recording(message: Message) -> None:
            if status.get("closed"):
                return  # the guard already answered (a body over the limit): the app's late reply is dropped
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        shed = path not in NOT_SHED
        if shed and not self._enter():
            self.metrics.shed.inc()
            await _reply(
                send_recording, 503, "overloaded: too many requests in flight", {"retry-after": str(self.retry_after)}
            )
            self._observe(scope, path, status, started)
            return
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body:
                await _reply(send_recording, 413, f"request body over {self.max_body} bytes")
                return
            await self.app(scope, self._bounded(receive, send_recording, status), send_recording)
        finally:
            if shed:
                with self._lock:
                    self.in_flight -= 1
            self._observe(scope, path, status, started)

    def _enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.max_in_flight:
                return False
            self.in_flight += 1
            return True

    def _bounded(self, receive: Receive, send: Send, status: dict[str, int]) -> Receive:
        """``receive`` that answers 413 itself once the body passes the limit, and tells the app the client left."""
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            if status.get("closed"):
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    if "code" not in status:
                        await _reply(send, 413, f"request body over {self.max_body} bytes")
                    status["closed"] = 1
                    return {"type": "http.disconnect"}
            return message

        return bounded_receive

    def _observe(self, scope: Scope, path: str, status: dict[str, int], started: float) -> None:
        route = scope.get("route")
        name = getattr(route, "path", None) or (path if path in NOT_SHED or path == "/readyz" else "other")
        code = status.get("code", 500)
        outcome = "ok" if code < 400 else str(code)
        self.metrics.observe(name, outcome, time.perf_counter() - started)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reply(send: Any, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
