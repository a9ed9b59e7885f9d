"""Training whose cost follows the labelled accounts and bounded samples: the unlabelled seeds per epoch are
capped, and validation scores the sampled neighbourhoods of (a weighted sample of) the validation accounts
instead of the whole graph — close to the full-graph figure, equal to it with every neighbour taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnn.graph_data import RiskGraph
from gnn.snapshot import read_snapshot
from gnn.split import TimeSplit
from gnn.train import (
    TrainConfig,
    auprc_by_target,
    epoch_seeds,
    fit_gnn,
    prepare_training,
    sampled_logits,
    validation_auprc,
    validation_logits,
    validation_sample,
)

CONFIG = TrainConfig(epochs=6, patience=6, hidden=16, fanout=(15, 10), batch_size=128, seed=1, val_max=None)


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> RiskGraph:
    """A generated 4,000-account exchange (the shared 800-account one has no labelled validation positive)."""
    from tests.conftest import generated_snapshot

    return read_snapshot(generated_snapshot(tmp_path_factory.mktemp("sampled-validation"), 4000))


@pytest.fixture(scope="module")
def trained(graph):
    """A GNN trained with neighbour sampling, its prepared data, and its full-graph logits."""
    from gnn.train import build_model, predict_logits

    result, td = fit_gnn(graph, TimeSplit.by_quantiles(graph), CONFIG)
    model = build_model(td.data, CONFIG)
    model.load_state_dict(result.state_dict)
    return model, td, result, predict_logits(model, td.data, torch.device("cpu"))


def test_sampled_logits_with_every_neighbour_equal_the_full_graph_pass(trained):
    model, td, _, full = trained
    every = TrainConfig(**{**CONFIG.as_dict(), "fanout": (-1, -1), "supernode_cap": None})
    nodes = td.val[::-1].copy()  # any order: the logits come back in the order asked
    got = sampled_logits(model, td, nodes, every, torch.device("cpu"), seed=0)
    np.testing.assert_allclose(got, full[nodes], rtol=1e-4, atol=1e-4)


def test_sampled_validation_auprc_is_close_to_the_full_graph_one(trained):
    model, td, result, full = trained
    full_aps = validation_auprc(full, td.targets, td.val, td.target_names)
    nodes, weights = validation_sample(td, CONFIG)
    assert np.array_equal(nodes, td.val) and (weights == 1).all()  # val_max None: every validation account
    sampled = sampled_logits(model, td, nodes, CONFIG, torch.device("cpu"), seed=5)
    sampled_aps = auprc_by_target(sampled, td.targets.numpy()[nodes], td.target_names, weights)
    measured = [t for t in td.target_names if not np.isnan(full_aps[t])]
    assert measured, "the small graph should have validation positives"
    for t in measured:
        assert abs(sampled_aps[t] - full_aps[t]) < 0.1, (t, sampled_aps[t], full_aps[t])
    assert abs(np.mean([sampled_aps[t] for t in measured]) - np.mean([full_aps[t] for t in measured])) < 0.05
    # what training recorded each epoch is this sampled figure (same sampler, same seeds)
    assert all(0 < h.val_seconds <= h.seconds for h in result.history)
    assert all(np.isfinite(h.val_auprc_mean) for h in result.history)


def test_bounded_validation_sample_keeps_positives_and_stands_for_the_rest(graph):
    td = prepare_training(graph, TimeSplit.by_quantiles(graph))
    config = TrainConfig(val_max=40, seed=3)
    nodes, weights = validation_sample(td, config)
    positive = td.targets.numpy()[td.val].any(axis=1)
    assert set(td.val[positive]) <= set(nodes)  # every positive kept
    assert len(nodes) == max(40, positive.sum() + 1) and np.all(np.diff(nodes) > 0)
    assert set(nodes) <= set(td.val)
    assert weights.sum() == pytest.approx(len(td.val))  # the sample stands for every validation account
    again, _ = validation_sample(td, config)
    assert np.array_equal(nodes, again)  # the same accounts every epoch
    # weighted AUPRC on the sample estimates the full one: exact when the scores rank positives on top
    scores = td.targets.numpy()[nodes].astype(float)
    assert auprc_by_target(scores, td.targets.numpy()[nodes], td.target_names, weights) == pytest.approx(
        validation_auprc(td.targets.numpy().astype(float), td.targets, td.val, td.target_names), nan_ok=True
    )


def test_unlabelled_seeds_per_epoch_are_bounded(graph):
    td = prepare_training(graph, TimeSplit.by_quantiles(graph))
    free = epoch_seeds(td, TrainConfig(unlabelled_sample=0.5, unlabelled_max=None), 0)
    capped = epoch_seeds(td, TrainConfig(unlabelled_sample=0.5, unlabelled_max=10), 0)
    assert len(free) == len(td.train_labelled) + round(0.5 * len(td.train_unlabelled))
    assert len(capped) == len(td.train_labelled) + 10
    assert set(td.train_labelled) <= set(capped)
    with pytest.raises(ValueError, match="unlabelled_max"):
        TrainConfig(unlabelled_max=-1)
    with pytest.raises(ValueError, match="val_max"):
        TrainConfig(val_max=0)


def test_validation_shares_of_ddp_workers_make_up_the_whole_validation(trained):
    """Under DDP each worker scores its own slice of the validation nodes; joined in rank order they are the
    logits of every validation node (equal to one process's with every neighbour taken)."""
    model, td, _, full = trained
    every = TrainConfig(**{**CONFIG.as_dict(), "fanout": (-1, -1), "supernode_cap": None})
    cpu = torch.device("cpu")
    whole = validation_logits(model, td, every, cpu)
    shares = [validation_logits(model, td, every, cpu, (rank, 3)) for rank in range(3)]
    assert [len(s) for s in shares] == [len(a) for a in np.array_split(td.val, 3)]
    np.testing.assert_allclose(np.concatenate(shares), whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(whole, full[td.val], rtol=1e-4, atol=1e-4)
    # one process with the default share validates as before: the same figure as its sampled logits
    nodes, _ = validation_sample(td, CONFIG)
    seed = CONFIG.seed * 1000 + 999_999
    np.testing.assert_array_equal(
        validation_logits(model, td, CONFIG, cpu), sampled_logits(model, td, nodes, CONFIG, cpu, seed)
    )


def test_a_validation_share_of_several_workers_needs_a_gather(trained):
    from gnn.train import run_epoch

    model, td, _, _ = trained
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(ValueError, match="validation_share"):
        run_epoch(model, td, td.train_labelled[:10], optimizer, CONFIG, torch.device("cpu"), 0, validation_share=(0, 2))
    with pytest.raises(ValueError, match="validation_share"):
        run_epoch(model, td, td.train_labelled[:10], optimizer, CONFIG, torch.device("cpu"), 0, validation_share=(2, 2))
