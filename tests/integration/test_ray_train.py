"""Ray: a training run whose worker fails mid-way resumes from its last checkpoint and finishes; Ray Data
scoring equals full-graph inference."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from gnn.ray_train import RayConfig, fit_with_ray
from gnn.snapshot import read_snapshot
from gnn.split import TimeSplit
from gnn.train import TrainConfig, build_model, prepare_training


@pytest.fixture(scope="module")
def snapshot(small_snapshot) -> Path:
    return small_snapshot


def test_worker_failure_resumes_from_the_last_checkpoint(snapshot, tmp_path):
    graph = read_snapshot(snapshot)
    split = TimeSplit.by_quantiles(graph)
    config = TrainConfig(epochs=4, patience=10, sampling="full", hidden=16)
    scaling = RayConfig(num_workers=1, use_gpu=False, max_failures=2, storage_path=tmp_path / "ray")
    state, history = fit_with_ray(snapshot, split, config, scaling, "resume-test", fail_once_at_epoch=2)
    assert (tmp_path / "ray" / "resume-test.failed-once").exists(), "the injected failure did not happen"
    assert [h["epoch"] for h in history] == [0, 1, 2, 3], "epochs before the failure must not rerun"
    # The weights that come back are a whole model's (the best epoch's), finite.
    expected = build_model(prepare_training(graph, split).data, config).state_dict()
    assert set(state) == set(expected) and all(state[k].shape == expected[k].shape for k in expected)
    assert all(v.isfinite().all() for v in state.values() if v.is_floating_point())


def test_training_job_under_ray_reads_the_graph_before_and_after_the_epochs(snapshot, tmp_path):
    from gnn.training_job import train_on_snapshot
    from graph.settings import Settings

    settings = Settings(RINGWATCH_DATA_DIR=tmp_path / "data")
    config = TrainConfig(epochs=2, patience=10, hidden=16, fanout=(5, 5), batch_size=128)
    scaling = RayConfig(num_workers=1, use_gpu=False, max_failures=0, storage_path=tmp_path / "ray")
    summary = train_on_snapshot(settings, snapshot, config, scaling)
    assert summary.trainer == "ray" and summary.epochs == 2
    assert not ray.is_initialized(), "the local Ray the job started must stop before the job's finish"
    assert summary.content_hash == read_snapshot(snapshot).content_hash
    assert set(summary.seconds) >= {"read_snapshot", "gnn", "finish", "save", "evaluate", "tracking", "total"}
    assert summary.seconds["total"] >= summary.seconds["gnn"] + summary.seconds["read_snapshot"]
    assert Path(summary.model_dir, "model.json").exists() and summary.test["threats"]


def test_ray_data_scoring_equals_full_graph_inference(snapshot, tmp_path):
    """Each Ray Data batch sees its accounts' complete neighbourhoods, so its scores are the full-graph ones."""
    import numpy as np

    from gnn.batch_inference import InferenceConfig
    from gnn.batch_inference import main as score_with_ray_data
    from gnn.estimator import RiskModel

    graph = read_snapshot(snapshot)
    model = RiskModel(TrainConfig(epochs=2, sampling="full", hidden=16)).fit(graph)
    model_dir = model.save(tmp_path / "model")
    expected = model.decision_function(graph)
    scores = score_with_ray_data(model_dir, snapshot, graph.num_accounts, InferenceConfig(actors=1, batch_size=400))
    assert scores.shape == expected.shape
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert scores.std(axis=0).min() > 0  # not a constant: the comparison means something
    # Two actors (as many as this machine's cores: the positions must not wait for a CPU of their own) score
    # their own batches and give the same scores.
    two = score_with_ray_data(model_dir, snapshot, graph.num_accounts, InferenceConfig(actors=2, batch_size=400))
    np.testing.assert_array_equal(two, scores)


def test_two_workers_share_the_epochs_and_take_the_same_stopping_decision(snapshot, tmp_path):
    """Two DDP workers split each epoch's training and validation accounts; the gathered validation logits give
    every worker the same AUPRC, so they stop together (a disagreement would leave one waiting for ever)."""
    graph = read_snapshot(snapshot)
    split = TimeSplit.by_quantiles(graph)
    config = TrainConfig(epochs=3, patience=1, hidden=16, fanout=(5, 5), batch_size=64)
    scaling = RayConfig(num_workers=2, use_gpu=False, max_failures=0, cpus_per_worker=1, storage_path=tmp_path / "ray")
    state, history = fit_with_ray(snapshot, split, config, scaling, "two-workers")
    assert 1 <= len(history) <= 3 and [h["epoch"] for h in history] == list(range(len(history)))
    assert all(h["cpu_seconds"] > 0 and 0 < h["val_seconds"] <= h["seconds"] for h in history)
    expected = build_model(prepare_training(graph, split).data, config).state_dict()
    assert set(state) == set(expected) and all(state[k].shape == expected[k].shape for k in expected)
