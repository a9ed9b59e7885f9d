"""The graph-agnostic estimator, the benchmark protocol, its CLI and its MLflow run, on a small planted graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from typer.testing import CliRunner

from gnn.graph_model import NODE, GraphRiskModel
from gnn.metrics import threat_metrics
from gnn.research.datasets import GraphDataset, load_npz
from gnn.research.protocol import RESEARCH_CONFIG, run_bench, split_nodes
from gnn.research.variants import HeteroGAT, hetero_gat
from gnn.train import TrainConfig
from graph.supernodes import MODEL_SUPERNODE_CAP

QUICK = TrainConfig(sampling="full", epochs=25, patience=25, lr=0.01, hidden=16, supernode_cap=None)


def _planted(n: int = 400, seed: int = 0) -> Data:
    """Positives (10 %) link mostly to each other and lean a little on feature 0: on its own a node's features
    barely tell (AUROC about 0.64), its neighbours' mean does."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int64)
    pos = np.flatnonzero(y)
    noise = rng.integers(0, n, (2, 3 * n))
    ring = rng.choice(pos, (2, 6 * len(pos)))
    x = rng.normal(size=(n, 3)).astype(np.float32)
    x[:, 0] += 0.5 * y
    return Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(np.hstack([noise, ring])), y=torch.from_numpy(y))


def _dataset(n: int = 400) -> GraphDataset:
    from gnn.graph_model import as_hetero

    data = _planted(n)
    hetero = as_hetero(data)
    return GraphDataset("planted", hetero, NODE, data.y.numpy().astype(np.int8), source="generated")


def test_graph_risk_model_learns_a_planted_ring_from_edges_alone_and_speaks_sklearn() -> None:
    data = _planted()
    split = split_nodes(_dataset(), "full", 0)
    model = GraphRiskModel(QUICK).fit(data, y=data.y, train_mask=split["train"], val_mask=split["val"])
    scores = model.source_scores(data)
    assert set(scores) == {"gnn", "baseline", "ensemble", "shipped"}
    assert model.decision_function(data).shape == (400, 1)
    assert model.predict(data).dtype == bool
    test_y = data.y.numpy()[split["test"]]
    for source in ("gnn", "baseline", "shipped"):
        auroc = threat_metrics(test_y, scores[source][split["test"], 0], 0.5)["auroc"]
        assert auroc > 0.8, (source, auroc)  # the neighbours' mean finds the ring
    assert model.choice["label"] in ("gnn", "baseline", "ensemble")
    assert model.validation["label"]["fitted_on"] == "validation"


def test_fit_reads_y_and_masks_from_the_data_and_checks_them() -> None:
    data = _planted(100)
    data.train_mask = torch.arange(100) < 60
    data.val_mask = torch.arange(100) >= 60
    model = GraphRiskModel(TrainConfig(sampling="full", epochs=2, hidden=8), use_baseline=False).fit(data)
    assert model.decision_function(data).shape == (100, 1)
    with pytest.raises(ValueError, match="no labelled node in train_mask"):
        GraphRiskModel(QUICK).fit(data, y=-np.ones(100))
    with pytest.raises(ValueError, match="not a node type"):
        GraphRiskModel(QUICK).fit(data, target_type="account")


def test_the_swap_hook_trains_any_module_with_the_same_call_signature() -> None:
    data = _planted()
    split = split_nodes(_dataset(), "full", 1)
    built: list[torch.nn.Module] = []

    def factory(d, outputs, target):
        built.append(hetero_gat(d, outputs, target))
        return built[-1]

    model = GraphRiskModel(QUICK, use_baseline=False, gnn_factory=factory)
    model.fit(data, y=data.y, train_mask=split["train"], val_mask=split["val"])
    assert isinstance(model.gnn, HeteroGAT) and built  # the GAT was trained, not the GraphSAGE
    auroc = threat_metrics(data.y.numpy()[split["test"]], model.decision_function(data)[split["test"], 0], 0.5)["auroc"]
    assert auroc > 0.75


def test_semi_and_full_splits_follow_the_protocol() -> None:
    ds = _dataset(1000)
    ds.labels[:50] = -1  # unlabelled nodes are never trained or tested on
    for seed in (0, 1):
        semi = split_nodes(ds, "semi", seed)
        y = ds.labels
        assert (y[semi["train"]] == 1).sum() == 20 and (y[semi["train"]] == 0).sum() == 80
        assert (y[semi["val"]] == 1).sum() == 20 and (y[semi["val"]] == 0).sum() == 80
        assert len(semi["test"]) == (y >= 0).sum() - 200
        full = split_nodes(ds, "full", seed)
        assert [len(full[k]) for k in ("train", "val", "test")] == [380, 190, 380]
        for split in (semi, full):
            everything = np.concatenate(list(split.values()))
            assert len(np.unique(everything)) == len(everything) and (y[everything] >= 0).all()
        assert abs(y[full["test"]].mean() - y[y >= 0].mean()) < 0.01  # stratified
    assert not np.array_equal(split_nodes(ds, "semi", 0)["train"], split_nodes(ds, "semi", 1)["train"])
    small = GraphDataset("small", ds.data, NODE, np.r_[np.ones(30), np.zeros(40), -np.ones(930)].astype(np.int8))
    capped = split_nodes(small, "semi", 0)  # 40 negatives: training and validation take 40 % each
    assert (small.labels[capped["train"]] == 0).sum() == 16 and (small.labels[capped["train"]] == 1).sum() == 12
    with pytest.raises(ValueError, match="protocol"):
        split_nodes(ds, "transductive", 0)


def test_full_protocol_uses_the_data_sets_own_splits(tmp_path: Path) -> None:
    ds = _dataset(100)
    ds.splits = [{"train": np.arange(0, 50), "val": np.arange(50, 70), "test": np.arange(70, 100)}] * 2
    assert split_nodes(ds, "full", 3)["test"].tolist() == list(range(70, 100))


def _npz(tmp_path: Path) -> Path:
    data = _planted(600)
    path = tmp_path / "planted.npz"
    np.savez(path, node_features=data.x.numpy(), node_labels=data.y.numpy(), edges=data.edge_index.numpy().T)
    return path


def test_bench_compares_every_model_on_the_same_splits_and_reports_mean_and_std(tmp_path: Path) -> None:
    ds = load_npz(_npz(tmp_path), "planted")
    result = run_bench(ds, "semi", 2, QUICK, variants={"gat": hetero_gat})
    summary = result.summary()
    assert set(summary) == {"gnn", "graph_boost", "shipped", "no_graph", "gat"}
    assert [s["sizes"]["train"] for s in result.per_seed] == [100, 100]
    for name, stats in summary.items():
        per_seed = [s["models"][name]["auprc"] for s in result.per_seed]
        assert stats["auprc_mean"] == pytest.approx(np.mean(per_seed))
        assert stats["auprc_std"] == pytest.approx(np.std(per_seed))
    # a node's own features barely tell; its neighbourhood does
    assert summary["no_graph"]["auroc_mean"] + 0.1 < min(summary[m]["auroc_mean"] for m in ("graph_boost", "gnn"))
    assert result.peak_memory_mib > 0
    assert "| no_graph |" in result.table() and "±" in result.table()
    json.dumps(result.as_dict())


def test_cli_bench_prints_json_alone_and_logs_to_the_research_experiment(tmp_path: Path, monkeypatch) -> None:
    from mlflow import MlflowClient

    from gnn.tracking import tracking_uri
    from graph.settings import Settings
    from serving.cli.app import app

    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "data"))
    path = _npz(tmp_path)
    args = ["research", "bench", "npz", "--path", str(path), "--seeds", "1", "--epochs", "3", "--hidden", "8", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["protocol"] == "semi" and set(document["summary"]) >= {"gnn", "no_graph", "shipped"}
    uri = tracking_uri(Settings())
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(document["mlflow_run"])
    assert client.get_experiment(run.info.experiment_id).name == "research"
    assert run.data.metrics["no_graph.auroc_mean"] == pytest.approx(document["summary"]["no_graph"]["auroc_mean"])
    missing = CliRunner().invoke(
        app, ["research", "bench", "sffsd", "--path", str(tmp_path / "none.zip"), "--no-mlflow"]
    )
    assert missing.exit_code != 0


def test_research_defaults_are_whole_graph_steps() -> None:
    assert RESEARCH_CONFIG.sampling == "full" and RESEARCH_CONFIG.supernode_cap == MODEL_SUPERNODE_CAP
