"""Monitoring's pure parts: PSI and KS, label churn, the config file, alert rules, the quality jump detector,
webhook retries, the history file, the Prometheus textfile, and the generator's drift option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.settings import Settings
from serving.monitor.alerts import JobHealth, evaluate_rules
from serving.monitor.config import AlertRules, WebhookPolicy, load_config
from serving.monitor.drift import PSI_MODERATE, frame_drift, ks_statistic, label_churn, psi, quantile_edges
from serving.monitor.history import MonitorRecord, append_jsonl, latest_record, read_jsonl
from serving.monitor.metrics import registry_for
from serving.monitor.profiles import MonitorError
from serving.monitor.quality import QualityPoint, quality_jumps
from serving.monitor.webhook import deliver, slack_payload


def test_psi_is_small_for_samples_of_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    same = psi(rng.normal(size=5_000), rng.normal(size=5_000))
    shifted = psi(rng.normal(size=5_000), rng.normal(0.5, size=5_000))
    assert same < 0.02 and shifted > 0.2
    assert psi(np.array([]), np.ones(3)) == 0.0


def test_psi_ignores_a_hair_of_movement_in_a_discrete_feature():
    rng = np.random.default_rng(1)
    reference = rng.choice([0.30, 0.20, 0.10, 0.05], p=[0.3, 0.2, 0.1, 0.4], size=4_000)
    assert psi(reference, np.where(reference == 0.30, 0.298, reference)) < 1e-9
    moved = np.where(rng.random(4_000) < 0.4, 0.3, reference)  # 40 % more at one value: a real shift
    assert psi(reference, moved) > 0.25
    edges = quantile_edges(reference)
    assert not set(np.round(edges, 6)) & {0.3, 0.2, 0.1, 0.05}  # edges between values, never on one


def test_ks_is_the_largest_cdf_gap():
    assert ks_statistic(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0
    assert ks_statistic(np.zeros(10), np.ones(10)) == 1.0
    assert ks_statistic(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0])) == pytest.approx(0.5)


def test_frame_drift_ranks_by_psi_and_names_the_moved_column():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"a": rng.normal(size=3_000), "b": rng.normal(size=3_000)})
    cur = pd.DataFrame({"a": rng.normal(size=3_000), "b": rng.normal(1.0, size=3_000), "extra": 1.0})
    drifts = frame_drift(ref, cur)
    assert [d.name for d in drifts] == ["b", "a"] and drifts[0].level == "major" and drifts[1].psi < PSI_MODERATE


def test_label_churn_counts_changes_by_direction():
    before = pd.Series({"x": "clear", "y": "collusion", "z": "clear", "gone": "bot_farm"})
    after = pd.Series({"x": "collusion", "y": "clear", "z": "clear", "new": "collusion"})
    assert label_churn(before, after) == {"clear->collusion": 1, "collusion->clear": 1}


def test_config_overrides_defaults_and_rejects_mistakes(tmp_path: Path):
    good = tmp_path / "m.toml"
    good.write_text("[rules]\nfeature_psi = 0.3\nfeature_top_n = 5\n[webhook]\nretries = 0\n")
    config = load_config(good)
    assert config.rules.feature_psi == 0.3 and config.rules.feature_top_n == 5 and config.webhook.retries == 0
    assert config.rules.score_psi == AlertRules().score_psi and config.source == str(good)
    as_json = tmp_path / "m.json"
    as_json.write_text(json.dumps({"retrain": {"min_new_verdicts": 7}}))
    assert load_config(as_json).retrain.min_new_verdicts == 7
    for text, complaint in (
        ("[rules]\nfeature_psy = 0.3\n", "unknown key rules.feature_psy"),
        ("[rulez]\n", "unknown section"),
        ("[rules]\nscore_psi = 'x'\n", "rules.score_psi must be a float"),
        ("[rules]\nscore_psi = -1\n", "must not be negative"),
        ("[rules\n", "cannot be read"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(MonitorError, match=complaint):
            load_config(bad)
    with pytest.raises(MonitorError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")


def _record(**changes) -> MonitorRecord:
    base = dict(
        run_id="monitor-x",
        scoring_run_id="score-x",
        at="2026-01-01T00:00:00+00:00",
        model_version="m/1",
        champion="m/1",
        accounts=10_000,
        references={"previous run": "score-w", "champion snapshot": "/snap"},
        feature_drift={"previous run": [{"name": "f", "psi": 0.4, "ks": 0.3, "reference_mean": 0, "current_mean": 1}]},
        score_drift={
            "previous run": [
                {"name": "score_collusion", "psi": 0.05, "ks": 0.1, "reference_mean": 0, "current_mean": 0}
            ]
        },
        flagged_share={"collusion": 0.03, "promo_abuse": 0.01, "bot_farm": 0.001},
        previous_flagged_share={"collusion": 0.01, "promo_abuse": 0.01, "bot_farm": 0.0001},
        label_churn={},
        efficacy={"precision": {"collusion": {"confirmed": 3, "false_positive": 9, "precision": 0.25}}},
        quality={"latest": {"ingest": "day2", "reject_rate": {"logins": 0.2}}, "jumps": {}},
    )
    return MonitorRecord(**(base | changes))


def test_rules_raise_what_crosses_a_threshold_and_nothing_else():
    health = JobHealth(last_ingest_ms=0, running=[{"run_id": "score-old", "started_at": 0}], now_ms=10 * 3_600_000)
    alerts = evaluate_rules(_record(), AlertRules(ingest_max_hours=5), health)
    got = {(a.rule, a.subject, a.severity) for a in alerts}
    assert got == {
        ("feature_psi", "f", "warning"),
        ("flagged_share", "collusion", "warning"),  # 3×; bot_farm's previous count (1) is under flagged_min
        ("verdict_precision", "collusion", "critical"),
        ("reject_rate", "logins", "warning"),
        ("no_ingest", "", "warning"),
        ("scoring_stuck", "score-old", "critical"),
    }
    assert all(a.alert_id == f"monitor-x:{a.rule}:{a.subject}" and a.scoring_run_id == "score-x" for a in alerts)
    quiet = AlertRules(feature_psi=0.5, flagged_ratio_high=4, precision_min_verdicts=50, reject_rate=0.5)
    assert evaluate_rules(_record(), quiet, JobHealth(None, [], 0)) == []


def test_quality_jump_needs_a_real_jump():
    def point(rate: float, stubs: int) -> QualityPoint:
        return QualityPoint("i", "t", {"accounts": rate}, {"accounts": 0.0}, stubs, {"accounts_per_ip": 1})

    assert quality_jumps([point(0.01, 2)], 3.0) == {}
    assert quality_jumps([point(0.01, 2), point(0.012, 3), point(0.011, 4)], 3.0) == {}
    jumps = quality_jumps([point(0.01, 2), point(0.01, 2), point(0.08, 40)], 3.0)
    assert set(jumps) == {"reject_rate.accounts", "unknown_account_references"}
    assert jumps["reject_rate.accounts"] == (0.08, 0.01)


def test_webhook_retries_with_backoff_and_never_raises(monkeypatch):
    import httpx

    calls: list[str] = []
    waits: list[float] = []

    def refuse(url: str, **_: object) -> httpx.Response:
        calls.append(url)
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(httpx, "post", refuse)
    delivery = deliver("http://hook", {"text": "x"}, WebhookPolicy(retries=3, backoff_seconds=0.5), waits.append)
    assert not delivery.ok and delivery.status.startswith("failed: ConnectError") and delivery.attempts == 4
    assert waits == [0.5, 1.0, 2.0]
    monkeypatch.setattr(httpx, "post", lambda url, **_: httpx.Response(400))
    assert deliver("http://hook", {}, WebhookPolicy(retries=3), waits.append).attempts == 1  # a 4xx is final
    assert deliver(None, {}, WebhookPolicy()).status == "off"
    payload = slack_payload([{"severity": "warning", "rule": "feature_psi", "subject": "f", "message": "m"}], "r")
    assert (
        payload["text"].startswith("ringwatch monitor r: 1 alert") and "*WARNING* `feature_psi` f: m" in payload["text"]
    )


def test_history_appends_and_reads_back_and_an_empty_one_is_a_readable_error(tmp_path: Path):
    settings = Settings(RINGWATCH_DATA_DIR=str(tmp_path))  # type: ignore[call-arg]
    with pytest.raises(MonitorError, match="no monitoring record yet"):
        latest_record(settings)
    path = tmp_path / "monitor" / "history.jsonl"
    append_jsonl(path, _record().as_dict())
    append_jsonl(path, _record(run_id="monitor-y", scoring_run_id="score-y").as_dict())
    with path.open("a") as f:
        f.write('{"torn')  # a crash mid-line
    assert [r["run_id"] for r in read_jsonl(path)] == ["monitor-x", "monitor-y"]
    assert (
        latest_record(settings)["run_id"] == "monitor-y" and latest_record(settings, "score-x")["run_id"] == "monitor-x"
    )
    assert path.stat().st_mode & 0o777 == 0o600


def test_prometheus_exposition_names_the_figures():
    from prometheus_client import generate_latest

    record = _record()
    record.alerts = [{"severity": "critical"}]
    text = generate_latest(registry_for(record, {"collusion": 300}, 12.5)).decode()
    assert 'ringwatch_flagged_accounts{threat="collusion"} 300.0' in text
    assert 'ringwatch_feature_psi{feature="f",reference="previous run"} 0.4' in text
    assert 'ringwatch_alerts{severity="critical"} 1.0' in text and "ringwatch_scoring_run_seconds 12.5" in text


def test_generate_drift_shifts_only_what_it_names(tmp_path: Path):
    import pyarrow.parquet as pq

    from ingest.synthetic import generate_exchange
    from ingest.synthetic.drift import BURST_COUNTRY, CAMPAIGN_CODE

    for drift in (None, "new-country-burst", "promo-campaign"):
        generate_exchange(600, 5, tmp_path / str(drift), drift=drift)
    base, burst, promo = (
        {t: pq.read_table(tmp_path / str(d) / f"{t}.parquet").to_pandas() for t in ("accounts", "promo_redemptions")}
        for d in (None, "new-country-burst", "promo-campaign")
    )
    assert (burst["accounts"]["country"] == BURST_COUNTRY).mean() == pytest.approx(0.3)
    assert (base["accounts"]["country"] == BURST_COUNTRY).sum() == 0
    assert (
        burst["accounts"]
        .drop(columns=["country", "kyc_level"])
        .equals(base["accounts"].drop(columns=["country", "kyc_level"]))
    )
    extra = promo["promo_redemptions"][promo["promo_redemptions"]["promo_code"] == CAMPAIGN_CODE]
    assert len(extra) > 150 and promo["accounts"].equals(base["accounts"])
    created = base["accounts"].set_index("account_id")["created_at"]
    assert (extra["ts"].to_numpy() > created.loc[extra["account_id"]].to_numpy()).all()
    with pytest.raises(ValueError, match="drift must be one of"):
        generate_exchange(600, 5, tmp_path / "x", drift="alien-invasion")
