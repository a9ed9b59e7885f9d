"""The model side on a small generated graph (800 accounts, no Neo4j): shapes, the time split, the
sklearn-style surface and persistence, decisions by policy, and mini-batch training through the sampler.
Quality floors need a bigger exchange: ``tests/integration/test_model_quality.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnn.estimator import CLEAR, RiskModel
from gnn.graph_data import RiskGraph
from gnn.model import RiskSAGE
from gnn.snapshot import read_snapshot
from gnn.source_choice import KNOWN_TIES
from gnn.thresholds import ThresholdPolicy
from gnn.train import TrainConfig
from graph.schema import THREATS

QUICK = TrainConfig(epochs=4, patience=4, sampling="full", hidden=16, seed=0)


@pytest.fixture(scope="module")
def graph(small_snapshot) -> RiskGraph:
    return read_snapshot(small_snapshot)


@pytest.fixture(scope="module")
def trained(graph) -> RiskModel:
    return RiskModel(QUICK).fit(graph)


def test_model_forward_shapes(graph):
    data = graph.data
    model = RiskSAGE(data.metadata(), {t: data[t].x.shape[1] for t in data.node_types}, hidden=16)
    logits = model(data.x_dict, data.edge_index_dict)
    assert logits.shape == (graph.num_accounts, len(THREATS))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("chunk", "shuffled"), [(1, False), (37, False), (1_000_000, False), (37, True)])
def test_layerwise_inference_equals_the_one_pass_forward(graph, chunk, shuffled):
    data = graph.data
    edges = data.edge_index_dict
    if shuffled:  # no edge type in destination order: inference sorts them itself
        generator = torch.Generator().manual_seed(1)
        edges = {e: ei[:, torch.randperm(ei.shape[1], generator=generator)] for e, ei in edges.items()}
    torch.manual_seed(0)
    model = RiskSAGE(data.metadata(), {t: data[t].x.shape[1] for t in data.node_types}, hidden=16, num_layers=2)
    model.eval()
    with torch.no_grad():
        expected = model(data.x_dict, data.edge_index_dict)
    model.train()
    got = model.inference(data.x_dict, edges, chunk=chunk)
    assert model.training  # the mode is restored
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="chunk"):
        model.inference(data.x_dict, data.edge_index_dict, chunk=0)


def test_split_is_by_creation_time(graph, trained):
    masks = trained.split.masks(graph)
    assert graph.created_at[masks["train"]].max() < graph.created_at[masks["val"]].min()
    assert graph.created_at[masks["val"]].max() < graph.created_at[masks["test"]].min()
    assert not (masks["train"] & masks["test"]).any()


def test_sklearn_surface_and_round_trip(graph, trained, tmp_path):
    scores = trained.decision_function(graph)
    assert scores.shape == (graph.num_accounts, len(THREATS))
    assert ((scores >= 0) & (scores <= 1)).all()
    labels = trained.predict(graph, scores)
    assert set(labels) <= {*THREATS, CLEAR}
    assert (labels != CLEAR).sum() < 0.2 * graph.num_accounts
    loaded = RiskModel.load(trained.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.decision_function(graph), scores, rtol=1e-5, atol=1e-6)
    assert loaded.choice == trained.choice and loaded.split == trained.split


def test_scores_kept_from_calibration_equal_a_second_full_graph_pass(graph, trained):
    # the training job evaluates and gates with these instead of scoring the graph again
    assert trained.fitted_raw is not None and set(trained.fitted_raw) == {"gnn", "baseline", KNOWN_TIES}
    np.testing.assert_allclose(
        trained.calibrate(trained.fitted_raw), trained.decision_function(graph), rtol=1e-5, atol=1e-6
    )


def test_decisions_follow_the_policy(graph, trained):
    scores = trained.decision_function(graph)
    labels, thresholds, policy = trained.decide(graph, scores)  # the model's own thresholds
    assert policy == trained.policy and thresholds == trained.thresholds
    assert (labels == trained.predict(graph, scores)).all()
    labels, _, _ = trained.decide(graph, scores, ThresholdPolicy(kind="budget", fpr_target=None, budget=25))
    assert (labels != CLEAR).sum() == 25
    top = np.argsort(-scores.max(axis=1), kind="stable")[:25]
    assert (labels[top] == np.array(THREATS, dtype=object)[scores[top].argmax(axis=1)]).all()
    loose, t_loose, _ = trained.decide(graph, scores, ThresholdPolicy(fpr_target=0.2))
    tight, t_tight, _ = trained.decide(graph, scores, ThresholdPolicy(fpr_target=0.001))
    assert (tight != CLEAR).sum() < (loose != CLEAR).sum()
    assert all(t_tight[t] >= t_loose[t] for t in THREATS)
    assert {t: trained.pu[t].frequency for t in THREATS} == {
        t: trained.validation[t]["label_frequency"] for t in THREATS
    }


def test_mini_batch_training_through_the_neighbour_sampler(graph):
    config = TrainConfig(epochs=3, patience=5, sampling="neighbor", fanout=(5, 5), batch_size=128, hidden=16)
    model = RiskModel(config, use_baseline=False).fit(graph)
    losses = [h["loss"] for h in model.history]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses  # the sampled batches do train the model
    scores = model.decision_function(graph)
    assert scores.shape == (graph.num_accounts, 3) and ((scores >= 0) & (scores <= 1)).all()
    assert scores.std(axis=0).min() > 0  # not a constant


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience():
    from gnn.train import EarlyStopping, EpochResult

    model = torch.nn.Linear(2, 1)
    stopping = EarlyStopping(patience=2)
    for epoch, score in enumerate([float("nan"), 0.3, 0.5, 0.4, 0.45]):
        with torch.no_grad():
            model.weight.fill_(epoch)
        stopping.update(EpochResult(epoch, 1.0, {}, score), model)
    assert stopping.best == 0.5 and stopping.best_epoch == 2 and stopping.should_stop
    assert stopping.best_state is not None and float(stopping.best_state["weight"][0, 0]) == 2.0
    unmeasured = EarlyStopping(patience=3)
    unmeasured.update(EpochResult(0, 1.0, {}, float("nan")), model)
    assert unmeasured.best_state is not None and unmeasured.best_epoch == 0  # a run always returns weights
