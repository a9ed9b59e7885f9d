"""The API's front door without a database: load shedding, body limits, errors without stack traces."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from neo4j.exceptions import ServiceUnavailable

from graph.settings import Settings
from serving.api.app import create_app
from serving.api.guard import RequestGuard
from serving.api.metrics import ApiMetrics
from serving.api.server import install_sighup
from serving.api.settings import ApiSettings
from serving.api.state import ApiState, Served


def _slow_app(release: asyncio.Event) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await release.wait()
        return {"ok": True}

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, int]:
        return {"keys": len(body)}

    return app


def test_requests_beyond_the_bound_get_503_with_retry_after_and_the_rest_complete() -> None:
    async def scenario() -> tuple[list[int], httpx.Response, httpx.Response, int]:
        release = asyncio.Event()
        metrics = ApiMetrics()
        guard = RequestGuard(_slow_app(release), max_in_flight=2, max_body_bytes=1024, retry_after_s=3, metrics=metrics)
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            held = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
            while guard.in_flight < 2:
                await asyncio.sleep(0.001)
            refused = await client.get("/slow")
            alive = await client.get("/healthz")  # never shed (404 here: the test app has no such route)
            release.set()
            done = [r.status_code for r in await asyncio.gather(*held)]
        return done, refused, alive, guard.in_flight

    done, refused, alive, left = asyncio.run(scenario())
    assert done == [200, 200]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
    assert "overloaded" in refused.json()["error"]
    assert alive.status_code == 404
    assert left == 0


def test_bodies_over_the_limit_are_413_declared_or_streamed() -> None:
    app = RequestGuard(
        _slow_app(asyncio.Event()), max_in_flight=4, max_body_bytes=256, retry_after_s=1, metrics=ApiMetrics()
    )
    with TestClient(app) as client:
        assert client.post("/echo", json={"a": "b"}).json() == {"keys": 1}
        big = client.post("/echo", json={"a": "x" * 1000})
        assert big.status_code == 413 and "256" in big.json()["error"]

        def chunks():
            for _ in range(10):
                yield b'{"a": "' + b"x" * 100 + b'",'

        streamed = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


class FakeDriver:
    """A driver whose sessions give transactions (``up``) or fail as a stopped server does."""

    def __init__(self, up: bool) -> None:
        self.up = up

    @contextmanager
    def session(self, **_: object) -> Iterator[FakeDriver]:
        if not self.up:
            raise ServiceUnavailable("connection refused")
        yield self

    @contextmanager
    def begin_transaction(self, **_: object) -> Iterator[object]:
        yield object()


def _state_without_graph(tmp_path, up: bool) -> ApiState:
    settings = Settings(RINGWATCH_DATA_DIR=str(tmp_path))  # type: ignore[call-arg]
    api = ApiSettings(RINGWATCH_API_KEYS="k" * 20)  # type: ignore[call-arg]
    return ApiState(settings, api, driver=FakeDriver(up))  # type: ignore[arg-type]


def test_an_unexpected_error_is_one_json_line_without_a_stack_trace(tmp_path) -> None:
    state = _state_without_graph(tmp_path, up=True)

    class BrokenScorer:
        pass

    thresholds = {"collusion": 0.5, "promo_abuse": 0.5, "bot_farm": 0.5}
    state.served = Served(BrokenScorer(), "v", thresholds, state.api.bands(thresholds), None, 0.0)  # type: ignore[arg-type]
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        response = client.post("/v1/score", json={"account_id": "a1"}, headers={"Authorization": "Bearer " + "k" * 20})
    assert response.status_code == 500
    body = response.json()
    assert body["error"].startswith("internal error (request ")
    assert "Traceback" not in response.text and "BrokenScorer" not in response.text and "score" not in body["error"]


def test_without_a_model_or_neo4j_the_api_says_so_and_is_not_ready(tmp_path) -> None:
    state = _state_without_graph(tmp_path, up=False)
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        auth = {"Authorization": "Bearer " + "k" * 20}
        assert client.post("/v1/score", json={"account_id": "a1"}, headers=auth).status_code == 503
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False and ready.json()["neo4j"] is False
        assert client.post("/v1/score", json={"account_id": ""}, headers=auth).status_code == 422


def test_sighup_reloads_the_champion_in_the_background(tmp_path) -> None:
    class Champion:
        thresholds = {"collusion": 0.5, "promo_abuse": 0.5, "bot_farm": 0.5}

    state = _state_without_graph(tmp_path, up=False)
    versions = iter(["v1", "v2"])
    state.model_loader = lambda: (Champion(), next(versions))  # type: ignore[assignment,return-value]
    state.load()
    app = create_app(state)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        install_sighup(app)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if state.served is not None and state.served.version == "v2":
                break
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert state.served is not None and state.served.version == "v2"
    assert 'ringwatch_api_model_info{version="v2"} 1.0' in app.state.metrics.render().decode()
