"""Degraded mode for real, on a Neo4j server of this file's own (never the shared one): the server hangs
(``SIGSTOP``: every call times out), then is stopped; meanwhile the API answers from the last batch run's plan,
flagged ``degraded`` with the score's age, ``/readyz`` says so, events are refused with Retry-After; when the
server answers again (``SIGCONT``), answers are live again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from graph import schema as s
from graph.local_server import LocalNeo4j, start_throwaway
from graph.settings import Settings
from ingest.privacy import Hasher
from serving.api.app import create_app
from serving.api.events import write_event
from tests.api_exchange import AUTH, api_model, make_state, plan_batch_run
from tests.conftest import TEST_HASH_KEY, connect

__all__ = ["api_model"]  # the session's model fixture

SIGNUPS = [
    ("acc_a", "203.0.113.1", "dev-1"),
    ("acc_b", "203.0.113.1", "dev-1"),
    ("acc_c", "198.51.100.4", "dev-2"),
]


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j]:
    server = start_throwaway(tmp_path_factory.mktemp("degraded-neo4j"), Settings().cache_dir)
    try:
        yield server
    finally:
        server.stop()


def _small_exchange(server: LocalNeo4j) -> None:
    """Three sign-ups (two on one device and IP) and a transfer, written by the API's own event path."""
    drv = connect(server)
    hasher = Hasher(TEST_HASH_KEY)
    try:
        for i, (account, ip, device) in enumerate(SIGNUPS):
            row = {"account_id": account, "created_at": f"2026-02-2{i}T10:00:00Z", "country": "DE", "kyc_level": "1"}
            write_event(drv, "neo4j", "accounts", {**row, "signup_ip": ip, "signup_device_id": device}, hasher)
        transfer = {"ts": "2026-02-26T10:00:00Z", "from_account_id": "acc_a", "to_account_id": "acc_c"}
        write_event(drv, "neo4j", "transfers", {**transfer, "asset": "USDT", "amount": "50"}, hasher)
    finally:
        drv.close()


def _wait_ready(client: TestClient, attempts: int = 120) -> bool:
    for _ in range(attempts):
        if client.get("/readyz").status_code == 200:
            return True
        time.sleep(0.5)
    return False


def test_neo4j_hung_then_back_then_stopped(own_server: LocalNeo4j, api_model, tmp_path, monkeypatch) -> None:
    _small_exchange(own_server)
    drv = connect(own_server)
    try:
        served = plan_batch_run(drv, api_model, tmp_path / "data", write=False)
    finally:
        drv.close()
    state = make_state(own_server, served, monkeypatch, RINGWATCH_API_NEO4J_TIMEOUT_S=2.0)
    row = served.plan.set_index(s.ACCOUNT.key).loc["acc_b"]
    account = {"account_id": "acc_b"}
    pid = own_server.status().pid
    assert pid is not None
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        live = client.post("/v1/score", json=account, headers=AUTH).json()
        assert live["degraded"] is False and live["score_age_s"] == 0.0
        assert live["scores"] == pytest.approx({t: row[t] for t in s.THREATS}, abs=1e-4)

        os.kill(pid, signal.SIGSTOP)
        try:
            cached = client.post("/v1/score", json=account, headers=AUTH)
            assert cached.status_code == 200
            body = cached.json()
            assert body["degraded"] is True and body["score_age_s"] > 0
            assert body["scores"] == pytest.approx({t: row[t] for t in s.THREATS}, abs=1e-12)
            assert body["label"] == row["label"] and body["model_version"] == "test-model/1"
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["degraded"] is True and ready.json()["neo4j"] is False
            assert ready.json()["cache_scored_at"] is not None
            login = {"account_id": "acc_b", "ts": "2026-02-27T10:00:00Z", "ip": "10.9.9.9", "device_id": "dev-9"}
            refused = client.post("/v1/events", json={"table": "logins", "row": login}, headers=AUTH)
            assert refused.status_code == 503 and "retry-after" in refused.headers
            assert "ringwatch_api_degraded 1.0" in client.get("/metrics", headers=AUTH).text
        finally:
            os.kill(pid, signal.SIGCONT)

        assert _wait_ready(client)
        again = client.post("/v1/score", json=account, headers=AUTH).json()
        assert again["degraded"] is False
        assert again["scores"] == pytest.approx(live["scores"], abs=1e-9)

        own_server.stop()
        down = client.post("/v1/score", json=account, headers=AUTH).json()
        assert down["degraded"] is True and down["scores"] == pytest.approx(body["scores"])
        view = client.get("/v1/accounts/acc_b", headers=AUTH)
        assert view.status_code == 200 and view.json()["degraded"] is True
    state.driver.close()
