"""API keys, the loopback rule, the API's settings, decisions, events refused before any write, Ray Serve."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from graph.errors import ConfigurationError
from ingest.contract import LOGINS
from serving.api.auth import bearer_token, check_bind, is_loopback, key_matches
from serving.api.events import EventRejectedError, event_frame, write_event
from serving.api.settings import ApiSettings, load_api_settings
from serving.api.state import decide

KEYS = [SecretStr("old-key-0123456789abcdef"), SecretStr("new-key-0123456789abcdef")]


def test_any_configured_key_matches_and_nothing_else() -> None:
    assert key_matches("old-key-0123456789abcdef", KEYS)
    assert key_matches("new-key-0123456789abcdef", KEYS)
    assert not key_matches("new-key-0123456789abcdeF", KEYS)
    assert not key_matches("", KEYS)
    assert not key_matches("anything", [])
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None and bearer_token("Bearer ") is None


def test_without_a_key_only_loopback_may_be_bound() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert is_loopback(host)
        check_bind(host, [])
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(ConfigurationError, match="RINGWATCH_API_KEYS"):
            check_bind(host, [])
        check_bind(host, KEYS)


def test_serve_refuses_a_public_address_without_a_key(run_cli, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("RINGWATCH_API_KEYS", raising=False)
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path))
    code, out, err = run_cli("serve", "--host", "0.0.0.0", "--port", "8765")
    assert code == 1
    assert "refusing to listen on 0.0.0.0" in err and out == ""


def test_api_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGWATCH_API_KEYS", " old-key-0123456789abcdef , new-key-0123456789abcdef ")
    monkeypatch.setenv("RINGWATCH_API_BLOCK_AT", '{"collusion": 0.8}')
    api = load_api_settings()
    assert [k.get_secret_value() for k in api.api_keys] == [k.get_secret_value() for k in KEYS]
    bands = api.bands({"collusion": 0.3, "promo_abuse": 0.95, "bot_farm": 0.5})
    assert bands == {"collusion": (0.3, 0.8), "promo_abuse": (0.95, 0.95), "bot_farm": (0.5, 0.9)}
    assert "0123456789" not in repr(api)  # keys are secrets
    for name, value, problem in (
        ("RINGWATCH_API_KEYS", "short", "16 characters"),
        ("RINGWATCH_API_BLOCK_AT", '{"fraud": 0.5}', "fraud"),
        ("RINGWATCH_API_REVIEW_AT", '{"collusion": 2}', "[0, 1]"),
        ("RINGWATCH_API_MAX_IN_FLIGHT", "0", "RINGWATCH_API_MAX_IN_FLIGHT"),
    ):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(ConfigurationError, match="invalid API settings") as e:
                load_api_settings()
            assert problem in str(e.value)


def test_decisions_follow_the_bands() -> None:
    bands = ApiSettings(RINGWATCH_API_REVIEW_AT='{"collusion": 0.4, "promo_abuse": 0.5, "bot_farm": 0.5}').bands(  # type: ignore[call-arg]
        {"collusion": 0.3, "promo_abuse": 0.5, "bot_farm": 0.5}
    )
    assert decide({"collusion": 0.2, "promo_abuse": 0.1, "bot_farm": 0.1}, bands) == "allow"
    assert decide({"collusion": 0.45, "promo_abuse": 0.1, "bot_farm": 0.1}, bands) == "review"
    assert decide({"collusion": 0.1, "promo_abuse": 0.1, "bot_farm": 0.95}, bands) == "block"


def test_a_bad_event_is_refused_by_the_batch_rules_before_any_write() -> None:
    row = {"account_id": "a1", "ts": "not a time", "ip": "10.0.0.1", "device_id": "d1"}
    with pytest.raises(EventRejectedError) as e:
        write_event(None, "neo4j", "logins", row, None)  # type: ignore[arg-type]  # never reached
    assert e.value.rule.startswith("ts:")
    with pytest.raises(EventRejectedError, match="colour: not a column of logins"):
        event_frame(LOGINS, {**row, "colour": "red"})
    frame = event_frame(LOGINS, {"account_id": " a1 ", "ts": "", "ip": None, "device_id": "d"})
    assert frame.iloc[0]["account_id"] == "a1" and frame["ts"].isna().all() and frame["user_agent"].isna().all()


def test_replicas_build_a_ray_serve_application_of_the_same_app() -> None:
    from ray.serve import Application

    from serving.api.replicas import build_deployment, replica_app

    app = build_deployment(3)
    assert isinstance(app, Application)
    deployment = app._bound_deployment
    assert deployment.num_replicas == 3 and deployment.name == "RingwatchApi"
    assert callable(replica_app)
    with pytest.raises(ValueError, match="replicas"):
        build_deployment(0)
