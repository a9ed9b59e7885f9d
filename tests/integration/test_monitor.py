"""Monitoring end to end on the test Neo4j: a champion trained on one exchange, then an undrifted and a
deliberately drifted second ingest scored by the real scoring job (which runs the monitor), alerts in Neo4j,
the alert log, the log file and a local webhook; ``monitor --retrain`` registers a challenger; bad input gives
one readable line; the dashboard renders in headless Chromium."""

from __future__ import annotations

import http.server
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j
import pytest

from gnn.snapshot import read_snapshot
from gnn.snapshot_job import take_snapshot
from gnn.tracking import CHAMPION, REGISTERED_MODEL, tracking_client
from gnn.train import TrainConfig
from gnn.training_job import main as train
from graph.settings import Settings
from ingest.job import ingest_folder
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from serving.monitor.history import alert_log_path, read_history, read_jsonl
from serving.scoring_job import run_scoring
from tests.conftest import TEST_HASH_KEY, connect, wipe

ACCOUNTS = 2_000
TINY = TrainConfig(epochs=2, patience=2, sampling="full", hidden=16, seed=0)
RETRAIN_CONFIG = '[retrain]\nepochs = 2\nhidden = 16\npatience = 2\nsampling = "full"\n'


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Monitored:
    settings: Settings
    env: dict[str, str]
    runs: dict[str, str]
    webhook: list[dict[str, Any]]
    log_lines: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def _ingest(driver: neo4j.Driver, root: Path, name: str, seed: int, drift: str | None, data: Path) -> None:
    generate_exchange(ACCOUNTS, seed, root / name, drift=drift)
    ingest_folder(root / name, driver, "neo4j", data / "rejects" / name, Hasher(TEST_HASH_KEY), batch_size=5_000)


@pytest.fixture(scope="module")
def monitored(neo4j_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    root = tmp_path_factory.mktemp("monitor")
    data = root / "data"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "NEO4J_URI": neo4j_server.uri,
        "NEO4J_USERNAME": neo4j_server.username,
        "NEO4J_PASSWORD": neo4j_server.password(),
        "RINGWATCH_HASH_KEY": TEST_HASH_KEY,
        "RINGWATCH_DATA_DIR": str(data),
        "RINGWATCH_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook",
    }
    lines: list[str] = []
    collect = _Collect(lines)
    logging.getLogger("ringwatch").addHandler(collect)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = Settings()
        driver = connect(neo4j_server)
        try:
            wipe(driver)
            _ingest(driver, root, "day1", 11, None, data)
            take_snapshot(driver, "neo4j", root / "snap1", source="test")
            train(settings, read_snapshot(root / "snap1"), root / "snap1", TINY, None)
            runs = {"day1": run_scoring(settings, driver).run_id}
            for name, drift in (("undrifted", None), ("drifted", "new-country-burst")):
                wipe(driver)  # the second ingest: the same exchange, one day on, as a fresh graph
                _ingest(driver, root, name, 12, drift, data)
                runs[name] = run_scoring(settings, driver, new_run=True).run_id
        finally:
            driver.close()
    logging.getLogger("ringwatch").removeHandler(collect)
    yield Monitored(settings, env, runs, _Hook.received, lines)
    server.shutdown()


def _record(m: Monitored, name: str) -> dict[str, Any]:
    return next(r for r in read_history(m.settings) if r["scoring_run_id"] == m.runs[name])


def test_every_scoring_run_was_monitored_against_both_references(monitored):
    history = read_history(monitored.settings)
    assert [r["scoring_run_id"] for r in history] == list(monitored.runs.values())
    first, second = _record(monitored, "day1"), _record(monitored, "undrifted")
    assert first["references"]["previous run"] is None and first["references"]["champion snapshot"]
    assert second["references"]["previous run"] == monitored.runs["day1"]
    # the champion was trained on day 1's graph: its features are the same as day 1's scoring run
    assert first["feature_drift"]["champion snapshot"][0]["psi"] < 0.01
    assert {d["name"] for d in second["score_drift"]["previous run"]} == {
        "score_collusion",
        "score_promo_abuse",
        "score_bot_farm",
    }
    assert set(second["flagged_share"]) == {"collusion", "promo_abuse", "bot_farm"}


def test_an_undrifted_second_ingest_raises_no_drift_alert(monitored):
    record = _record(monitored, "undrifted")
    assert not [a for a in record["alerts"] if a["rule"] in ("feature_psi", "score_psi")], record["alerts"]
    for drifts in record["feature_drift"].values():  # no feature with both PSI and KS high (AlertRules.feature_ks)
        assert not [d for d in drifts if d["psi"] > 0.25 and d["ks"] > 0.2], drifts[:3]


def test_a_drifted_second_ingest_names_the_drifted_features_and_alerts_everywhere(monitored, neo4j_server):
    record = _record(monitored, "drifted")
    top = record["feature_drift"]["previous run"][:3]
    assert {d["name"] for d in top} >= {"country_freq", "kyc_0"}, top
    raised = {a["subject"] for a in record["alerts"] if a["rule"] == "feature_psi"}
    assert {"country_freq", "kyc_0"} <= raised
    # Neo4j: the open-alerts query of the investigators' pack lists them
    from graph.queries.investigator import PACK_BY_NAME

    driver = connect(neo4j_server)
    try:
        rows, _, _ = driver.execute_query(PACK_BY_NAME["open_alerts"].cypher, database_="neo4j")
        monitor_run, _, _ = driver.execute_query(
            "MATCH (m:MonitorRun {run_id: $id}) RETURN m.alerts AS n", id=record["run_id"], database_="neo4j"
        )
    finally:
        driver.close()
    open_ids = {r["alert_id"] for r in rows}
    assert {a["alert_id"] for a in record["alerts"]} <= open_ids
    assert all(r["delivery"] == "sent" for r in rows if r["run_id"] == record["run_id"])
    assert monitor_run[0]["n"] == len(record["alerts"])
    # the alert log and the log file
    logged = read_jsonl(alert_log_path(monitored.settings))
    assert {a["alert_id"] for a in record["alerts"]} <= {e.get("alert_id") for e in logged if e["event"] == "raised"}
    assert any("alert feature_psi country_freq" in line for line in monitored.log_lines)
    # the webhook: one Slack-compatible POST for the drifted run (none for runs without alerts)
    posts = [p for p in monitored.webhook if any(a["run_id"] == record["run_id"] for a in p["alerts"])]
    assert len(posts) == 1 and "country_freq" in posts[0]["text"] and posts[0]["blocks"][0]["type"] == "section"
    # Prometheus textfile
    prom = (monitored.settings.data_dir / "monitor" / "metrics" / "ringwatch.prom").read_text()
    assert 'ringwatch_feature_psi{feature="country_freq",reference="previous run"}' in prom
    assert "ringwatch_alerts{severity=" in prom


def test_monitor_retrain_registers_a_challenger_and_keeps_the_champion(monitored, tmp_path):
    import os
    import sys

    config = tmp_path / "monitor.toml"
    config.write_text(RETRAIN_CONFIG)
    client = tracking_client(monitored.settings)
    champion_before = client.get_registered_model(REGISTERED_MODEL).aliases[CHAMPION]
    versions_before = len(client.search_model_versions(f"name='{REGISTERED_MODEL}'"))
    # a subprocess: in-process (run_cli), training under capsys leaves a carriage return in standard error
    done = subprocess.run(
        [sys.executable, "-m", "serving", "monitor", "--retrain", "--json", "--fail-on-alert", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **monitored.env},
        timeout=600,
    )
    assert done.returncode == 3, done.stderr[-3000:]  # the drift is still there: alerts, so exit code 3
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["scoring_run_id"] == monitored.runs["drifted"]
    assert any("drift alerts" in r for r in result["retrain"]["reasons"])
    trained = result["retrain"]["trained"]
    assert trained["tracking"]["promoted"] is False
    assert len(client.search_model_versions(f"name='{REGISTERED_MODEL}'")) == versions_before + 1
    assert client.get_registered_model(REGISTERED_MODEL).aliases[CHAMPION] == champion_before


def test_bad_input_gives_one_readable_line(monitored, run_cli, monkeypatch, tmp_path):
    for k, v in monitored.env.items():
        monkeypatch.setenv(k, v)
    history_before = len(read_history(monitored.settings))
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules]\nfeature_psi = 'high'\n")
    code, out, err = run_cli("monitor", "--config", str(bad))
    assert code == 1 and "rules.feature_psi must be a float" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("monitor", "--run", "score-20000101T000000-000000")
    assert code == 1 and "no scoring run 'score-20000101T000000-000000'" in err
    assert len(read_history(monitored.settings)) == history_before  # nothing written by either
    # an unreachable webhook: the alerts are still in Neo4j and the log; the delivery failure is recorded
    unreachable = tmp_path / "fast.toml"
    unreachable.write_text("[webhook]\nretries = 1\nbackoff_seconds = 0.01\ntimeout_seconds = 1.0\n")
    monkeypatch.setenv("RINGWATCH_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/nowhere")
    code, out, err = run_cli("monitor", "--json", "--config", str(unreachable))
    assert code == 0, err
    result = json.loads(out)
    assert result["alerts"] and result["delivery"].startswith("failed")
    logged = read_jsonl(alert_log_path(monitored.settings))
    assert {a["alert_id"] for a in result["alerts"]} <= {e.get("alert_id") for e in logged}
    assert logged[-1]["event"] == "delivery" and logged[-1]["delivery"].startswith("failed")
    # an empty monitoring history (a fresh data folder): one line, exit 1
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "empty"))
    code, out, err = run_cli("monitor")
    assert code == 1 and "no scoring run saved" in err and len(err.strip().splitlines()) == 1


def test_dashboard_renders_in_headless_chromium(monitored, neo4j_server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    import httpx
    import uvicorn

    from graph.queries import rings as ring_queries
    from serving.monitor.dashboard import CHART_NAMES, create_app, dashboard_data
    from serving.rings import DetectedRing, member_ring_id

    driver = connect(neo4j_server)
    db = monitored.settings.neo4j_database
    # A ring written as the rings job writes one, so the rings chart has something to show whatever the model found.
    first_three = "MATCH (a:Account) RETURN a.account_id AS id ORDER BY id LIMIT 3"
    records, _, _ = driver.execute_query(first_three, database_=db)
    ids = [r["id"] for r in records]
    ring = DetectedRing(member_ring_id(ids), ids, "collusion", 0.9, 3.0, 0, 0, "written by the dashboard test")
    now = int(time.time() * 1000)
    written = {"rings_run_id": "rings-test", "scoring_run_id": None, "now": now, "database_": db}
    driver.execute_query(ring_queries.WRITE_RINGS, rings=[ring.props()], **written)
    records, _, _ = driver.execute_query("MATCH (r:Ring) RETURN count(r) AS n", database_=db)
    by_day = dashboard_data(monitored.settings, driver)["rings_by_day"]
    assert sum(d["new"] for d in by_day) == records[0]["n"] >= 1 and by_day[-1]["active"] >= 1
    config = uvicorn.Config(create_app(monitored.settings, lambda: driver), host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        for name in CHART_NAMES:
            chart = httpx.get(f"{url}charts/{name}.svg", timeout=30)
            assert chart.status_code == 200 and "<svg" in chart.text, name
            assert name == "precision" or "no data yet" not in chart.text, name  # no verdicts in this test
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
        dom = subprocess.run(
            [chromium, *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert dom.stdout.count('class="chart"') == len(CHART_NAMES)
        assert monitored.runs["drifted"] in dom.stdout and "country_freq" in dom.stdout
        console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
        assert console_errors == []
        shot = tmp_path / "dashboard.png"
        subprocess.run(
            [chromium, *flags, "--window-size=1400,2600", f"--screenshot={shot}", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        import matplotlib.image

        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[0] == 2600 and pixels.shape[1] == 1400
        assert pixels[..., :3].std() > 0.05  # not a blank page
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        driver.close()
