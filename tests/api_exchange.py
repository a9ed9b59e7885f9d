"""A graph scored by a small trained model, and an API state over it, for the online API's integration tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import neo4j
import pandas as pd
import pytest

from gnn.build import build_risk_graph
from gnn.estimator import RiskModel
from gnn.export import export_graph
from gnn.snapshot import read_snapshot
from gnn.thresholds import PUCalibrator
from gnn.train import TrainConfig
from graph import schema as s
from graph.driver import build_driver
from graph.settings import Settings
from serving.api.server import driver_options
from serving.api.settings import ApiSettings
from serving.api.state import ApiState
from serving.feature_store import incident_digests, write_feature_store
from serving.score import ScoringRun, plan_run, save_plan, write_scores
from serving.scoring_job import scoring_dir
from tests.conftest import TEST_HASH_KEY

DB = "neo4j"
KEYS = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]
AUTH = {"Authorization": f"Bearer {KEYS[1]}"}
QUICK = TrainConfig(epochs=3, patience=3, sampling="full", hidden=16, seed=0)


@dataclass
class Served:
    model_dir: Path
    data_dir: Path
    run: ScoringRun
    plan: pd.DataFrame


@pytest.fixture(scope="session")
def api_model(small_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model (trained once per session on the 800-account snapshot), saved to a folder.

    Its calibration weighs the accounts' known-fraud ties (:mod:`gnn.known_ties`) with a weight set here: the
    800 accounts have too few labelled validation positives to fit one, and online and batch must agree on
    that input too."""
    folder = tmp_path_factory.mktemp("api-model") / "model"
    model = RiskModel(QUICK).fit(read_snapshot(small_snapshot))
    model.pu = {t: PUCalibrator(**{**model.pu[t].state(), "ties_coef": 1.5}) for t in s.THREATS}
    model.save(folder)
    return folder


def plan_batch_run(driver: neo4j.Driver, model_dir: Path, data_dir: Path, write: bool = True) -> Served:
    """Score the graph in ``driver``'s database as the batch job does (:func:`serving.score.plan_run`), save the
    plan and the feature store where the API looks for them, and write it back (``write``)."""
    tables = export_graph(driver, DB)
    graph = build_risk_graph(tables.nodes, tables.rels)
    model = RiskModel.load(model_dir)
    run, plan = plan_run(model, graph, "test-model/1", batch_size=1_000)
    plans = scoring_dir(Settings(RINGWATCH_DATA_DIR=str(data_dir)))  # type: ignore[call-arg]
    save_plan(plans / run.run_id, run, plan)
    digests = incident_digests(tables.rels, graph.ids[s.ACCOUNT.label])
    write_feature_store(plans / run.run_id, run.run_id, model, "test-model/1", graph, digests)
    if write:
        write_scores(driver, DB, run, plan)
    return Served(model_dir, data_dir, run, plan)


def make_state(server, served: Served, monkeypatch: pytest.MonkeyPatch, **api: object) -> ApiState:
    for key, value in {
        "NEO4J_URI": server.uri,
        "NEO4J_USERNAME": server.username,
        "NEO4J_PASSWORD": server.password(),
        "NEO4J_DATABASE": DB,
        "RINGWATCH_HASH_KEY": TEST_HASH_KEY,
        "RINGWATCH_DATA_DIR": str(served.data_dir),
    }.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    api_settings = ApiSettings(**{"RINGWATCH_API_KEYS": ",".join(KEYS), **api})
    driver = build_driver(settings, **driver_options(api_settings))
    state = ApiState(settings, api_settings, driver, lambda: (RiskModel.load(served.model_dir), "test-model/1"))
    state.load()
    return state
