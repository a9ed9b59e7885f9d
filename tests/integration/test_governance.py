"""Model governance on a generated exchange in the real Neo4j: the validation gate (a biased model and a model
worse on one threat fail it, naming the group or threat and the metric; an ordinary one passes), ``promote``
(refused without a passing gate, ``--force`` recorded in MLflow and the graph, the next scoring run uses the
new champion), and shadow scoring (the challenger writes only ``challenger_*``; risk scores, labels and rings
are untouched; the comparison is stored on the run node and in MLflow).

Models are small (16 hidden units, 12 full-graph epochs) and trained once for the module on the same graph.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import neo4j
import numpy as np
import pandas as pd
import pytest

from gnn.build import risk_graph_from_neo4j
from gnn.estimator import RiskModel
from gnn.gate import GateFailed, validate_model
from gnn.graph_data import LABEL_CODES, UNLABELLED, RiskGraph
from gnn.tracking import (
    CHAMPION,
    REGISTERED_MODEL,
    SHADOW_EXPERIMENT,
    log_training_run,
    model_version,
    tracking_client,
)
from gnn.train import TrainConfig
from graph import schema as s
from serving.investigate import investigate, render
from serving.promotion import gate_report_of, promote, promotions
from serving.report import build_report
from serving.rings import ring_membership, run_rings
from serving.scoring_job import run_scoring
from serving.shadow import write_challenger
from tests.conftest import connect, wipe
from tests.scored_graph import ingest_exchange

DB = "neo4j"
QUICK = TrainConfig(epochs=12, patience=4, sampling="full", hidden=16, seed=0)
RISK_COLUMNS = ("collusion", "promo_abuse", "bot_farm", "score", "label", "reasons", "model_version")


class Exchange:
    def __init__(self, folder: Path, truth: pd.DataFrame, graph: RiskGraph) -> None:
        self.folder, self.truth, self.graph = folder, truth, graph
        self.models: dict[str, Path] = {}
        self.biased_country = ""


def _relabelled(graph: RiskGraph, labels: np.ndarray) -> RiskGraph:
    out = copy.copy(graph)
    out.labels = labels
    return out


@pytest.fixture(scope="module")
def exchange(neo4j_server, tmp_path_factory) -> Exchange:
    folder = tmp_path_factory.mktemp("governance")
    drv = connect(neo4j_server)
    try:
        wipe(drv)
        truth = ingest_exchange(drv, folder, accounts=2_500, seed=3)
        graph = risk_graph_from_neo4j(drv, DB)
    finally:
        drv.close()
    ex = Exchange(folder, truth, graph)
    ex.models["champion"] = RiskModel(QUICK).fit(graph).save(folder / "models" / "champion")
    ex.models["ordinary"] = RiskModel(QUICK).fit(graph).save(folder / "models" / "ordinary")
    # Biased on purpose: a third of the benign and unlabelled accounts of the biggest country labelled bot farms.
    # The model sees country through its country_freq feature, and learns "this country is fraud".
    country = graph.attributes["country"].astype(object).to_numpy()
    ex.biased_country = str(pd.Series(country).value_counts().index[0])
    rng = np.random.default_rng(0)
    flip = (country == ex.biased_country) & (graph.labels <= 0) & (rng.random(graph.num_accounts) < 0.3)
    labels = graph.labels.copy()
    labels[flip] = LABEL_CODES[s.BOT_FARM]
    ex.models["biased"] = RiskModel(QUICK).fit(_relabelled(graph, labels)).save(folder / "models" / "biased")
    # Worse on one threat: the bot-farm labels moved to random unlabelled accounts.
    labels = graph.labels.copy()
    bots = labels == LABEL_CODES[s.BOT_FARM]
    labels[bots] = UNLABELLED
    labels[rng.choice(np.flatnonzero(graph.labels == UNLABELLED), int(bots.sum()), replace=False)] = LABEL_CODES[
        s.BOT_FARM
    ]
    ex.models["worse"] = RiskModel(QUICK).fit(_relabelled(graph, labels)).save(folder / "models" / "worse")
    return ex


def _model(ex: Exchange, name: str) -> RiskModel:
    return RiskModel.load(ex.models[name])


def test_the_gate_passes_an_ordinary_model_and_fails_a_biased_one_and_one_worse_on_a_threat(exchange):
    ex, champion = exchange, _model(exchange, "champion")
    first = validate_model(champion, ex.graph, model_version="first", truth=ex.truth)
    assert first.passed and first.reasons == [] and first.champion_version is None
    assert first.evaluated_accounts > 500
    assert {g["group"] for g in first.bias["groups"]["kyc_level"]} >= {"0", "1", "2", "3"}
    assert all(m["ece_ok"] for m in first.threats.values())

    ordinary = validate_model(
        _model(ex, "ordinary"),
        ex.graph,
        model_version="ordinary",
        champion=champion,
        champion_version="c",
        truth=ex.truth,
    )
    assert ordinary.passed, ordinary.reasons

    biased = validate_model(
        _model(ex, "biased"), ex.graph, model_version="biased", champion=champion, champion_version="c", truth=ex.truth
    )
    assert not biased.passed
    bias_reasons = [r for r in biased.reasons if r.startswith("bias:")]
    assert bias_reasons and f"country={ex.biased_country}" in bias_reasons[0]
    assert "false-positive rate" in bias_reasons[0]
    failed = biased.bias["failures"][0]
    assert (failed["attribute"], failed["group"]) == ("country", ex.biased_country)
    assert failed["fpr_lower"] > biased.rules["bias"]["max_fpr_ratio"] * biased.bias["overall"]["fpr"]

    worse = validate_model(
        _model(ex, "worse"), ex.graph, model_version="worse", champion=champion, champion_version="c", truth=ex.truth
    )
    assert not worse.passed
    assert any(r.startswith("bot_farm: AUPRC") and "below the champion's" in r for r in worse.reasons), worse.reasons
    assert not worse.threats[s.BOT_FARM]["auprc_ok"]


def _register(settings, ex: Exchange, name: str, gate: bool):
    model = _model(ex, name)
    return log_training_run(
        settings,
        ex.models[name],
        params={"name": name},
        history=[],
        metrics={"val_auprc_mean": 0.5},
        tags={"run": name},
        run_name=f"train-{name}",
        gate=(lambda version, _: validate_model(model, ex.graph, model_version=version, truth=ex.truth))
        if gate
        else None,
    )


def _risk_state(driver: neo4j.Driver) -> pd.DataFrame:
    records, _, _ = driver.execute_query(
        "MATCH (a:Account) RETURN a.account_id AS account_id, a.risk_collusion AS collusion,\n"
        "a.risk_promo_abuse AS promo_abuse, a.risk_bot_farm AS bot_farm, a.risk_score AS score,\n"
        "a.risk_label AS label, a.risk_reasons AS reasons, a.risk_model_version AS model_version,\n"
        "a.risk_run_id AS run_id, a.risk_flagged_by AS flagged_by, a.prev_risk_label AS prev_label\n"
        "ORDER BY account_id",
        database_=DB,
    )
    return pd.DataFrame([dict(r) for r in records])


def test_promote_refuses_a_failing_model_records_a_forced_one_and_scoring_uses_the_new_champion(
    exchange, settings, driver, graph_env
):
    ex = exchange
    first = _register(settings, ex, "champion", gate=True)
    assert first.promoted and first.gate == "passed"
    biased = _register(settings, ex, "biased", gate=False)
    assert not biased.promoted

    with pytest.raises(GateFailed, match=f"country={ex.biased_country}.*--force"):
        promote(settings, driver, biased.version, reason="try", by="analyst", truth=ex.truth)
    client = tracking_client(settings)
    assert str(model_version(client, CHAMPION).version) == first.version
    assert client.get_model_version(REGISTERED_MODEL, biased.version).tags["gate"] == "failed"
    with pytest.raises(ValueError, match="--reason"):
        promote(settings, driver, biased.version, force=True, truth=ex.truth)

    forced = promote(
        settings, driver, biased.version, reason="urgent rollout", by="risk-lead", force=True, truth=ex.truth
    )
    assert forced.outcome == "forced" and forced.previous_champion == f"{REGISTERED_MODEL}/{first.version}"
    tags = client.get_model_version(REGISTERED_MODEL, biased.version).tags
    assert tags["promoted_by"] == "risk-lead" and tags["promoted_reason"] == "urgent rollout"
    assert tags["promoted_forced"] == "true" and tags["gate"] == "failed"
    trail = promotions(driver, DB)
    assert [p["outcome"] for p in trail[:2]] == ["forced", "refused"]
    assert trail[0]["by"] == "risk-lead" and trail[0]["reason"] == "urgent rollout" and trail[0]["forced"] is True
    assert any(f"country={ex.biased_country}" in r for r in trail[0]["gate_reasons"])

    summary = run_scoring(settings, driver, new_run=True, monitor=False)
    assert summary.model_version == f"{REGISTERED_MODEL}/{biased.version}"
    # The report shows the champion's gate report (FPR per country) and the promotion audit trail.
    index = build_report(
        driver, DB, ex.folder / "report", top=1, gate_of=lambda version: gate_report_of(settings, version)
    )
    page = index.read_text(encoding="utf-8")
    assert "<h2>Model governance</h2>" in page
    assert f"Validation gate of {REGISTERED_MODEL}/{biased.version}: failed" in page
    assert f"<td>{ex.biased_country}</td>" in page and "urgent rollout" in page

    # Back to the first model through the command line: it passes the gate against the biased champion.
    # (A subprocess: MLflow's artifact download draws a progress bar, carriage returns and all.)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "promote",
            first.version,
            "--json",
            "--truth",
            str(ex.folder / "exchange" / "truth.csv"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **graph_env},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "promoted" and result["gate"]["passed"] is True
    assert result["by"] and result["reason"] == "passed the validation gate"
    assert str(model_version(client, CHAMPION).version) == first.version


def test_shadow_scoring_writes_challenger_scores_and_leaves_risk_labels_and_rings_untouched(exchange, settings, driver):
    ex = exchange
    champion = str(ex.models["champion"])
    alone = run_scoring(settings, driver, model=champion, new_run=True, monitor=False)
    run_rings(driver, DB)
    before, rings_before = _risk_state(driver), ring_membership(driver, DB)

    shadow = run_scoring(
        settings, driver, model=champion, new_run=True, monitor=False, challenger=str(ex.models["biased"])
    )
    run_rings(driver, DB)
    after, rings_after = _risk_state(driver), ring_membership(driver, DB)
    pd.testing.assert_frame_equal(after[["account_id", *RISK_COLUMNS]], before[["account_id", *RISK_COLUMNS]])
    assert rings_after == rings_before
    assert shadow.labels == alone.labels

    comparison = shadow.challenger
    assert comparison is not None and comparison["challenger_model_version"] == "biased"
    assert comparison["disagreements"] > 0 and 0 < comparison["flagged_overlap"] <= 1
    assert -1 <= comparison["score_correlation"] <= 1
    records, _, _ = driver.execute_query(
        "MATCH (a:Account) WHERE a.challenger_run_id = $run RETURN count(a) AS n,\n"
        "count(CASE WHEN a.challenger_disagrees THEN 1 END) AS disagree,\n"
        "count(CASE WHEN (a.challenger_label <> 'clear') <> (a.risk_label <> 'clear') THEN 1 END) AS differ",
        run=shadow.run_id,
        database_=DB,
    )
    assert records[0]["n"] == ex.graph.num_accounts
    assert records[0]["disagree"] == comparison["disagreements"]
    records, _, _ = driver.execute_query(
        "MATCH (r:ScoringRun {run_id: $run}) RETURN r {.*} AS r", run=shadow.run_id, database_=DB
    )
    node = records[0]["r"]
    assert node["shadow_disagreements"] == comparison["disagreements"]
    assert node["shadow_challenger_model_version"] == "biased"
    assert node["shadow_score_correlation"] == pytest.approx(comparison["score_correlation"])
    assert "shadow_champion_precision_on_disagreements" in node or comparison["champion_judged"] == 0
    # The stakeholders' dashboard shows the same comparison.
    from fastapi.testclient import TestClient

    from serving.monitor.dashboard import create_app, dashboard_data

    shown = dashboard_data(settings, driver)["shadow"]
    assert shown["challenger_model_version"] == "biased" and shown["scoring_run_id"] == shadow.run_id
    assert shown["disagreements"] == comparison["disagreements"]
    page = TestClient(create_app(settings, lambda: driver)).get("/").text
    assert '<table id="shadow">' in page and "biased" in page
    plan = Path(shadow.plan)
    assert (plan / "comparison.json").is_file()
    assert len(pd.read_csv(plan / "disagreements.csv")) == comparison["disagreements"]
    client = tracking_client(settings)
    exp = client.get_experiment_by_name(SHADOW_EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.scoring_run = '{shadow.run_id}'")
    assert runs and runs[0].data.metrics["disagreements"] == comparison["disagreements"]

    # investigate shows both models' scores while the challenger's belong to the account's current run.
    flagged_by_challenger = driver.execute_query(
        "MATCH (a:Account {challenger_run_id: $run, challenger_disagrees: true}) RETURN a.account_id AS id LIMIT 1",
        run=shadow.run_id,
        database_=DB,
    ).records[0]["id"]
    view = investigate(driver, DB, flagged_by_challenger)
    assert view["challenger"]["model_version"] == "biased" and view["challenger"]["disagrees"] is True
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render(view))
    assert "challenger biased (in shadow" in console.export_text()

    # The challenger's write itself touches nothing of the champion's: everything flagged, nothing changes.
    everything = pd.DataFrame(
        {
            "account_id": before["account_id"],
            **{t: 0.99 for t in s.THREATS},
            "score": 0.99,
            "label": s.BOT_FARM,
            "disagrees": True,
        }
    )
    write_challenger(driver, DB, "score-shadow-only", "all-flagging", everything, batch_size=1_000)
    pd.testing.assert_frame_equal(_risk_state(driver), after)
    assert ring_membership(driver, DB) == rings_after
    assert investigate(driver, DB, flagged_by_challenger)["challenger"] is None  # not the account's current run
