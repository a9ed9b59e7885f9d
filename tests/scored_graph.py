"""A small generated exchange, ingested into the test Neo4j and scored by a known rule, for the serving tests.

The scores do not come from a trained model (training is tested on its own): a fixed rule gives most planted
ring members their ring's threat and a high score, misses a few, and flags a few innocent accounts, so the
write-back, rings, query pack, investigator view and report all run on realistic output whose right answers
the test knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import neo4j
import numpy as np
import pandas as pd

from gnn.build import risk_graph_from_neo4j
from gnn.graph_data import RiskGraph
from graph import schema as s
from ingest.job import ingest_folder
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from serving.score import ScoringRun, plan_from_scores
from tests.conftest import TEST_HASH_KEY

THRESHOLD = 0.5


@dataclass
class ScoredExchange:
    folder: Path
    truth: pd.DataFrame
    graph: RiskGraph
    run: ScoringRun
    plan: pd.DataFrame


def ingest_exchange(driver: neo4j.Driver, folder: Path, accounts: int = 2_500, seed: int = 11) -> pd.DataFrame:
    """Generate and ingest an exchange; returns its truth table."""
    generate_exchange(accounts, seed, folder / "exchange")
    ingest_folder(folder / "exchange", driver, "neo4j", folder / "rejects", Hasher(TEST_HASH_KEY), batch_size=2_000)
    return pd.read_csv(folder / "exchange" / "truth.csv", dtype=str, keep_default_na=False)


def rule_scores(
    graph: RiskGraph, truth: pd.DataFrame, seed: int = 0, miss: float = 0.1, false_alarms: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels: ring members get their threat (a share ``miss`` missed), a few others flagged."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.0, 0.2, size=(graph.num_accounts, len(s.THREATS)))
    idx = graph.account_index(truth["account_id"])
    for i, threat in enumerate(s.THREATS):
        members = idx[(truth["label"] == threat).to_numpy() & (idx >= 0)]
        hit = members[rng.random(len(members)) >= miss]
        scores[hit, i] = rng.uniform(0.7, 0.99, size=len(hit))
    noise = rng.random(graph.num_accounts) < false_alarms
    scores[noise, 0] = rng.uniform(0.55, 0.8, size=int(noise.sum()))
    labels = np.where(
        scores.max(axis=1) >= THRESHOLD, np.array(s.THREATS, dtype=object)[scores.argmax(axis=1)], s.CLEAR
    )
    return scores, labels


def scored_exchange(
    driver: neo4j.Driver, folder: Path, accounts: int = 2_500, seed: int = 11, batch_size: int = 500
) -> ScoredExchange:
    """Ingest an exchange and plan (not write) a scoring run with :func:`rule_scores`."""
    truth = ingest_exchange(driver, folder, accounts, seed)
    graph = risk_graph_from_neo4j(driver, "neo4j")
    scores, labels = rule_scores(graph, truth)
    run, plan = plan_from_scores(
        graph,
        scores,
        labels,
        "rule/1",
        thresholds={t: THRESHOLD for t in s.THREATS},
        train_end=None,
        batch_size=batch_size,
    )
    return ScoredExchange(folder, truth, graph, run, plan)
