"""The online API against the real Neo4j: agreement with the batch job, events, auth, the investigator view,
readiness, metrics and hot reload.

One small exchange is ingested into the shared server for the module, a small model trained on it, and a batch
scoring run planned, saved and written with that model (:func:`serving.score.plan_run`), so the online answers
can be compared with what the batch job wrote.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator

import neo4j
import numpy as np
import pytest
from fastapi.testclient import TestClient

from gnn.estimator import RiskModel
from graph import schema as s
from serving.api.app import create_app
from serving.api.scorer import OnlineScorer
from serving.api.state import ApiState
from serving.feature_store import STORE_DIR, STORE_FILE
from serving.scoring_job import scoring_dir
from tests.api_exchange import AUTH, KEYS, Served, api_model, make_state, plan_batch_run
from tests.conftest import connect, wipe
from tests.scored_graph import ingest_exchange

DB = "neo4j"
__all__ = ["api_model"]  # the session's model fixture, shared with the other API tests


@pytest.fixture(scope="module")
def served(neo4j_server, api_model, tmp_path_factory) -> Served:
    folder = tmp_path_factory.mktemp("api")
    drv = connect(neo4j_server)
    try:
        wipe(drv)
        ingest_exchange(drv, folder, accounts=600, seed=5)
        return plan_batch_run(drv, api_model, folder / "data")
    finally:
        drv.close()


@pytest.fixture()
def client(neo4j_server, served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    state = make_state(neo4j_server, served, monkeypatch, RINGWATCH_API_NEO4J_TIMEOUT_S=60.0)
    with TestClient(create_app(state), raise_server_exceptions=False) as c:
        yield c
    state.driver.close()


def test_online_scores_equal_the_batch_scores_for_every_account(client: TestClient, served: Served) -> None:
    state: ApiState = client.app.state.ringwatch  # type: ignore[attr-defined]
    scorer = state.served.scorer  # type: ignore[union-attr]
    assert scorer is not None
    assert scorer.store is not None and scorer.store.run_id == served.run.run_id
    plan = served.plan.set_index(s.ACCOUNT.key)
    ids = list(plan.index)
    # Every account, a few per call; first from the feature store (nothing changed since the batch run: no
    # account is recomputed), then every one recomputed from its own relationships as after an event.
    for recompute in (False, True):
        for lo in range(0, len(ids), 25):
            chunk = ids[lo : lo + 25]
            scored = state.read(lambda tx, chunk=chunk, r=recompute: scorer.score(tx, chunk, recompute=r))
            assert [a.account_id for a in scored.accounts] == chunk
            flagged_now = [a for a in chunk if plan.loc[a, "label"] != s.CLEAR]
            # Without recompute, only a flagged account whose batch reasons are missing would be recomputed.
            assert set(scored.recomputed) <= (set(chunk) if recompute else set(flagged_now))
            if not recompute:
                assert scored.recomputed == []
            for a in scored.accounts:
                expected = plan.loc[a.account_id]
                got = [a.scores[t] for t in s.THREATS]
                assert np.allclose(got, expected[list(s.THREATS)].to_numpy(float), atol=1e-4), (recompute, a)
                assert a.label == expected["label"]
                assert a.reasons == (expected["reasons"] or [])
    # One at a time over HTTP, reasons and all: the flagged accounts, and the smallest receptive fields.
    flagged = [i for i in ids if plan.loc[i, "label"] != s.CLEAR][:10]
    for account_id in [*flagged, *ids[:: len(ids) // 10]]:
        response = client.post("/v1/score", json={"account_id": account_id}, headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        expected = plan.loc[account_id]
        assert max(abs(body["scores"][t] - expected[t]) for t in s.THREATS) < 1e-4
        assert body["label"] == expected["label"]
        assert body["reasons"] == (expected["reasons"] or [])
        assert body["model_version"] == "test-model/1" and body["degraded"] is False
        assert body["thresholds"] == pytest.approx(served.run.thresholds)
        assert body["decision"] in ("allow", "review", "block")
        assert (body["decision"] != "allow") == (body["label"] != s.CLEAR or body["score"] >= 0.9)


def test_a_recomputed_accounts_features_are_its_batch_features(client: TestClient, served: Served) -> None:
    """What an event's recompute computes for its account — its raw features, from its own relationships and what
    they read, by the batch job's feature code — equals what the batch run computed for it (the store's row), for
    every account of the exchange."""
    from graph.receptive_field import read_receptive_field

    state: ApiState = client.app.state.ringwatch  # type: ignore[attr-defined]
    scorer = state.served.scorer  # type: ignore[union-attr]
    assert scorer is not None and scorer.store is not None
    ids = list(served.plan[s.ACCOUNT.key])
    stored = scorer.store.x[s.ACCOUNT.label][scorer.store.find(s.ACCOUNT.label, ids)]
    worst = 0.0
    for i, account_id in enumerate(ids):
        field = state.read(lambda tx, a=account_id: read_receptive_field(tx, [a], 0, scorer.supernode_cap))
        graph = scorer.field_graph(field)
        row = graph.data[s.ACCOUNT.label].x[int(graph.account_index([account_id])[0])].numpy()
        np.testing.assert_allclose(row, stored[i], rtol=1e-5, atol=1e-5, err_msg=account_id)
        worst = max(worst, float(np.abs(row - stored[i]).max()))
    assert worst < 1e-5


def test_past_the_expansion_cap_the_store_still_gives_the_batch_score(
    neo4j_server, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identifiers with more users than the expansion cap are not expanded: computing the whole receptive field
    then leaves their other users out (the batch job's full-graph pass sees them all: why online once differed
    from batch next to hubs); the store's embeddings of such a hub are the batch run's, so the score is not."""
    state = make_state(
        neo4j_server, served, monkeypatch, RINGWATCH_API_NEO4J_TIMEOUT_S=60.0, RINGWATCH_API_EXPAND_CAP=2
    )
    try:
        scorer = state.served.scorer  # type: ignore[union-attr]
        assert scorer is not None and scorer.store is not None and scorer.supernode_cap == 2
        plan = served.plan.set_index(s.ACCOUNT.key)
        ids = list(plan.index)[::3]
        expected = plan.loc[ids, list(s.THREATS)].to_numpy(float)
        stored = state.read(lambda tx: scorer.score(tx, ids))
        assert stored.recomputed == []
        got = np.array([[a.scores[t] for t in s.THREATS] for a in stored.accounts])
        assert np.abs(got - expected).max() < 1e-4
        without_store = OnlineScorer(scorer.model, scorer.version, scorer.context, scorer.thresholds, supernode_cap=2)
        whole_fields = state.read(lambda tx: without_store.score(tx, ids))
        capped = np.array([[a.scores[t] for t in s.THREATS] for a in whole_fields.accounts])
        assert np.abs(capped - expected).max() > 1e-3  # the cap, not the store, made the difference
    finally:
        state.driver.close()


def test_missing_or_wrong_key_is_401_and_either_key_works(client: TestClient, served: Served) -> None:
    account_id = str(served.plan[s.ACCOUNT.key].iloc[0])
    assert client.post("/v1/score", json={"account_id": account_id}).status_code == 401
    wrong = {"Authorization": "Bearer not-a-key-0123456789abcdef"}
    assert client.post("/v1/score", json={"account_id": account_id}, headers=wrong).status_code == 401
    assert client.get("/metrics").status_code == 401
    for key in KEYS:
        ok = client.post("/v1/score", json={"account_id": account_id}, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200


def test_unknown_account_and_bad_requests_are_readable_errors(client: TestClient) -> None:
    missing = client.post("/v1/score", json={"account_id": "no-such-account"}, headers=AUTH)
    assert missing.status_code == 404 and "no-such-account" in missing.json()["error"]
    extra = client.post("/v1/score", json={"account_id": "a", "admin": True}, headers=AUTH)
    assert extra.status_code == 422 and "admin" in extra.json()["rule"]
    injection = client.post("/v1/score", json={"account_id": "x'}) MATCH (n) DETACH DELETE n //"}, headers=AUTH)
    assert injection.status_code == 404  # a parameter, never Cypher: the graph is still there
    assert client.get(f"/v1/accounts/{'acc_000001'}", headers=AUTH).status_code == 200
    for response in (missing, extra, injection):
        assert "Traceback" not in response.text


def _device_uses(driver: neo4j.Driver, account_id: str, device_id: str) -> int | None:
    records, _, _ = driver.execute_query(
        "MATCH (:Account {account_id: $a})-[r:USED_DEVICE]->(:Device {device_id: $d}) RETURN r.count AS n",
        a=account_id,
        d=device_id,
        database_=DB,
    )
    return int(records[0]["n"]) if records else None


def test_an_event_is_written_once_and_its_account_decided(client: TestClient, driver: neo4j.Driver) -> None:
    login = {
        "account_id": "acc_000010",
        "ts": "2026-02-27T10:00:00Z",
        "ip": "198.51.100.77",
        "device_id": "api-test-device-1",
        "user_agent": "test-agent",
    }
    first = client.post("/v1/events", json={"table": "logins", "row": login}, headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json()["written"] is True
    assert first.json()["account"]["account_id"] == "acc_000010"
    assert first.json()["account"]["decision"] in ("allow", "review", "block")
    state: ApiState = client.app.state.ringwatch  # type: ignore[attr-defined]
    scorer = state.served.scorer  # type: ignore[union-attr]
    assert scorer is not None and scorer.store is not None
    after = state.read(lambda tx: scorer.score(tx, ["acc_000010", "acc_000012"]))
    assert after.recomputed == ["acc_000010"]  # its relationships changed since the batch run; the other did not
    again = client.post("/v1/events", json={"table": "logins", "row": login}, headers=AUTH)
    assert again.status_code == 200 and again.json()["written"] is False
    assert again.json()["event_id"] == first.json()["event_id"]
    assert _device_uses(driver, "acc_000010", "api-test-device-1") == 1  # the retry did not count twice


def test_a_fresh_signup_is_scored_and_decided(client: TestClient) -> None:
    signup = {
        "account_id": "api-new-account-1",
        "created_at": "2026-02-27T11:00:00Z",
        "email": "new.user@example.org",
        "phone": "+14155550123",
        "country": "US",
        "kyc_level": "1",
        "referrer_id": None,
        "signup_ip": "203.0.113.9",
        "signup_device_id": "api-test-device-2",
    }
    response = client.post("/v1/events", json={"table": "accounts", "row": signup}, headers=AUTH)
    assert response.status_code == 200, response.text
    account = response.json()["account"]
    assert account["account_id"] == "api-new-account-1" and account["degraded"] is False
    assert set(account["scores"]) == set(s.THREATS)


def test_a_bad_event_is_422_naming_the_rule_and_writes_nothing(client: TestClient, driver: neo4j.Driver) -> None:
    bad = {"account_id": "acc_000011", "ts": "yesterday", "ip": "198.51.100.78", "device_id": "api-bad-device"}
    response = client.post("/v1/events", json={"table": "logins", "row": bad}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["rule"].startswith("ts:")
    unknown = client.post("/v1/events", json={"table": "logins", "row": {**bad, "colour": "red"}}, headers=AUTH)
    assert unknown.status_code == 422 and unknown.json()["rule"].startswith("colour:")
    records, _, _ = driver.execute_query("MATCH (d:Device {device_id: 'api-bad-device'}) RETURN d", database_=DB)
    assert records == []


def test_account_view_is_the_stored_batch_result(client: TestClient, served: Served) -> None:
    row = served.plan.iloc[3]
    response = client.get(f"/v1/accounts/{row[s.ACCOUNT.key]}", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["score"] == pytest.approx(row["score"]) and body["label"] == row["label"]
    assert body["run_id"] == served.run.run_id and body["degraded"] is False
    assert client.get("/v1/accounts/no-such-account", headers=AUTH).status_code == 404


def test_ready_and_metrics(client: TestClient, served: Served) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["degraded"] is False
    client.post("/v1/score", json={"account_id": str(served.plan[s.ACCOUNT.key].iloc[0])}, headers=AUTH)
    client.post("/v1/score", json={"account_id": "no-such-account"}, headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert 'ringwatch_api_requests_total{outcome="ok",route="/v1/score"}' in text
    assert 'ringwatch_api_requests_total{outcome="404",route="/v1/score"}' in text
    assert 'ringwatch_api_model_info{version="test-model/1"} 1.0' in text
    assert 'ringwatch_api_stage_seconds_count{stage="neo4j_read"}' in text
    assert client.get("/docs").status_code == 200
    assert "examples" in client.get("/openapi.json").text


def test_reload_swaps_the_model_without_dropping_requests(client: TestClient, served: Served) -> None:
    state: ApiState = client.app.state.ringwatch  # type: ignore[attr-defined]
    versions = iter(["test-model/2", "test-model/3"])
    state.model_loader = lambda: (RiskModel.load(served.model_dir), next(versions))
    # The next batch run's feature store, written with the new champion (here: the same arrays, relabelled).
    scoring = scoring_dir(state.settings)
    newer = scoring / "score-next-run" / STORE_DIR
    shutil.copytree(scoring / served.run.run_id / STORE_DIR, newer)
    meta = json.loads((newer / STORE_FILE).read_text())
    meta.update(model_version="test-model/2", run_id="score-next-run", written_at=meta["written_at"] + 1)
    (newer / STORE_FILE).write_text(json.dumps(meta))
    account_id = str(served.plan[s.ACCOUNT.key].iloc[1])
    statuses: list[int] = []
    seen: set[str] = set()

    def keep_scoring() -> None:
        for _ in range(6):
            r = client.post("/v1/score", json={"account_id": account_id}, headers=AUTH)
            statuses.append(r.status_code)
            seen.add(r.json().get("model_version", ""))

    worker = threading.Thread(target=keep_scoring)
    worker.start()
    reloaded = client.post("/v1/admin/reload", headers=AUTH)
    worker.join()
    assert reloaded.status_code == 200 and reloaded.json()["model_version"] == "test-model/2"
    assert reloaded.json()["previous_version"] == "test-model/1"
    assert statuses == [200] * 6
    assert seen <= {"test-model/1", "test-model/2"}
    after = client.post("/v1/score", json={"account_id": account_id}, headers=AUTH).json()
    assert after["model_version"] == "test-model/2"
    store = state.served.scorer.store  # type: ignore[union-attr]
    assert store is not None and store.run_id == "score-next-run"  # the new champion's store came with it
    assert 'ringwatch_api_model_info{version="test-model/2"} 1.0' in client.get("/metrics", headers=AUTH).text


def test_the_same_event_sent_at_once_is_written_once(client: TestClient, driver: neo4j.Driver) -> None:
    login = {
        "account_id": "acc_000014",
        "ts": "2026-02-27T12:00:00Z",
        "ip": "198.51.100.79",
        "device_id": "api-test-device-race",
        "user_agent": "test-agent",
    }
    answers: list[dict] = []

    def send() -> None:
        response = client.post("/v1/events", json={"table": "logins", "row": login}, headers=AUTH)
        assert response.status_code == 200, response.text
        answers.append(response.json())

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert len(answers) == 4 and sum(a["written"] for a in answers) == 1
    assert len({a["event_id"] for a in answers}) == 1
    assert _device_uses(driver, "acc_000014", "api-test-device-race") == 1


def test_an_event_of_an_erased_account_writes_nothing(client: TestClient, driver: neo4j.Driver) -> None:
    from graph.queries.erasure import MERGE_TOMBSTONE
    from ingest.erasure import erasure_hash
    from ingest.privacy import Hasher
    from tests.conftest import TEST_HASH_KEY

    account_hash = erasure_hash(Hasher(TEST_HASH_KEY), "api-erased-account")
    driver.execute_query(MERGE_TOMBSTONE, account_hash=account_hash, at=0, reason="test", run_id="t", database_=DB)
    try:
        login = {
            "account_id": "api-erased-account",
            "ts": "2026-02-27T12:00:00Z",
            "ip": "198.51.100.80",
            "device_id": "api-test-device-erased",
        }
        response = client.post("/v1/events", json={"table": "logins", "row": login}, headers=AUTH)
        assert response.status_code == 404  # nothing written: no account to score
        records, _, _ = driver.execute_query(
            "MATCH (d:Device {device_id: 'api-test-device-erased'}) RETURN d", database_=DB
        )
        assert records == []
    finally:
        driver.execute_query("MATCH (e:Erasure {account_hash: $h}) DELETE e", h=account_hash, database_=DB)
