"""The online API's feature store: what the batch job writes, and the last GNN layer computed from it.

No Neo4j: the graph is the 800-account snapshot, the model the API tests' small one. The online scorer's fast
path (:meth:`serving.api.scorer.StoredLayers.account_from_store`: the account's relationships, its neighbours'
stored embeddings) must give every account the logits of the batch job's full-graph pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gnn.baseline import neighbourhood_features
from gnn.build import build_risk_graph
from gnn.estimator import RiskModel
from gnn.snapshot import read_snapshot_tables
from graph import schema as s
from serving.api.scorer import StoredLayers
from serving.feature_store import (
    STORE_DIR,
    FeatureStore,
    baseline_used,
    incident_digests,
    latest_store,
    live_digests,
    stage_feature_store,
    write_feature_store,
)
from tests.api_exchange import api_model

__all__ = ["api_model"]


def _incident(rels: dict[str, pd.DataFrame], account_id: str) -> dict[str, pd.DataFrame]:
    out = {}
    for rel in s.DOMAIN_RELS:
        frame = rels[rel.type]
        mine = frame["src"] == account_id
        if rel.target == s.ACCOUNT:
            mine |= frame["dst"] == account_id
        out[rel.type] = frame[mine.to_numpy(dtype=bool)].reset_index(drop=True)
    return out


def _as_read(frames: dict[str, pd.DataFrame]) -> dict[str, list[list[Any]]]:
    """Rows as :func:`graph.receptive_field.read_incident` returns them (Python values, None for a null)."""
    return {
        t: [
            [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row]
            for row in f.to_numpy(dtype=object)
        ]
        for t, f in frames.items()
    }


@pytest.fixture(scope="module")
def written(small_snapshot: Path, api_model: Path, tmp_path_factory: pytest.TempPathFactory):
    tables, _, _ = read_snapshot_tables(small_snapshot)
    graph = build_risk_graph(tables.nodes, tables.rels)
    model = RiskModel.load(api_model)
    run_folder = tmp_path_factory.mktemp("scoring") / "score-test"
    digests = incident_digests(tables.rels, graph.ids[s.ACCOUNT.label])
    meta = write_feature_store(run_folder, "score-test", model, "m/1", graph, digests)
    return tables, graph, model, run_folder, meta


def test_the_store_holds_every_node_as_the_batch_graph_has_it(written) -> None:
    tables, graph, model, run_folder, meta = written
    store = FeatureStore.load(run_folder / STORE_DIR)
    assert store.run_id == "score-test" and store.model_version == "m/1" and meta["num_layers"] == 2
    for node in s.DOMAIN_NODES:
        ids = graph.ids[node.label]
        assert np.array_equal(store.find(node.label, ids), np.arange(len(ids)))
        assert np.array_equal(store.x[node.label], graph.data[node.label].x.numpy())
    fifth = graph.ids[s.ACCOUNT.label][5]
    assert store.find(s.ACCOUNT.label, ["no-such-account", fifth, fifth + "0", fifth[:-1]]).tolist() == [-1, 5, -1, -1]
    assert len(store.layers) == 1 and store.layers[0][s.ACCOUNT.label].shape == (graph.num_accounts, 16)
    if baseline_used(model):
        assert store.baseline is not None
        assert np.allclose(store.baseline, neighbourhood_features(graph, model.config.supernode_cap)[0])
    assert latest_store(run_folder.parent, "m/1") is not None and latest_store(run_folder.parent, "m/2") is None


def test_the_last_layer_from_stored_neighbours_gives_the_full_graph_logits(written) -> None:
    tables, graph, model, run_folder, _ = written
    store = FeatureStore.load(run_folder / STORE_DIR)
    layers = StoredLayers(model, store)
    expected = model.raw_scores(graph)["gnn"]
    ids = graph.ids[s.ACCOUNT.label]
    got = np.stack(
        [layers.account_from_store(i, _as_read(_incident(tables.rels, ids[i])), ids[i])[0] for i in range(len(ids))]
    )  # type: ignore[index]
    assert np.abs(got - expected).max() < 1e-4


def test_an_account_digest_is_its_own_relationships_and_changes_with_them(written) -> None:
    tables, graph, _, run_folder, _ = written
    store = FeatureStore.load(run_folder / STORE_DIR)
    ids = graph.ids[s.ACCOUNT.label]
    for i in (0, 7, len(ids) - 1):
        mine = _incident(tables.rels, ids[i])
        assert incident_digests(mine, np.array([ids[i]], dtype=object))[0] == store.digest[i]
        assert live_digests(_as_read(mine), [ids[i]]) == [int(store.digest[i])]  # as a request computes it
    busy = int(np.argmax([len(_incident(tables.rels, a)[s.USED_DEVICE.type]) for a in ids[:50]]))
    mine = _incident(tables.rels, ids[busy])
    logged_in = mine[s.USED_DEVICE.type].copy()
    logged_in.loc[0, "count"] = logged_in.loc[0, "count"] + 1  # one more login on a device it already used
    assert (
        incident_digests({**mine, s.USED_DEVICE.type: logged_in}, np.array([ids[busy]], dtype=object))[0]
        != (store.digest[busy])
    )
    assert incident_digests({}, np.array([ids[busy]], dtype=object))[0] != store.digest[busy]


@pytest.mark.parametrize("choice", [None, ("ensemble", "baseline", "gnn"), ("gnn", "gnn", "gnn")])
def test_one_pass_gives_the_run_its_scores_and_the_store_is_seen_only_once_published(
    written, api_model: Path, tmp_path: Path, choice: tuple[str, ...] | None
) -> None:
    tables, graph, _, _, _ = written
    model = RiskModel.load(api_model)  # its own copy: the choice of sources is changed below
    assert model.baseline is not None
    if choice is not None:
        model.choice = dict(zip(s.THREATS, choice))
    run_folder = tmp_path / "score-staged"
    staged = stage_feature_store(run_folder, model, graph, incident_digests(tables.rels, graph.ids[s.ACCOUNT.label]))
    expected = model.raw_scores(graph)
    assert np.array_equal(staged.raw["gnn"], expected["gnn"])  # the same computation as scoring without a store
    shipped = [i for i, t in enumerate(s.THREATS) if model.choice[t] in ("baseline", "ensemble")]
    assert ("baseline" in staged.raw) == bool(shipped) == baseline_used(model)
    if shipped:  # the baseline's margins only where a threat reads them
        assert np.array_equal(staged.raw["baseline"][:, shipped], expected["baseline"][:, shipped])
        assert np.isnan(np.delete(staged.raw["baseline"], shipped, axis=1)).all()
    assert np.array_equal(model.calibrate(staged.raw), model.decision_function(graph))
    assert latest_store(tmp_path, "m/1") is None  # staged, not published: invisible to the API
    with pytest.raises(OSError):
        FeatureStore.load(run_folder / STORE_DIR)
    meta = staged.publish("score-staged", "m/1")
    store = FeatureStore.load(run_folder / STORE_DIR)
    assert store.run_id == meta["run_id"] == "score-staged" and store.model_version == "m/1"
    assert not staged.staging.exists()
    for t in (s.ACCOUNT.label, s.DEVICE.label):
        assert np.array_equal(store.find(t, graph.ids[t]), np.arange(len(graph.ids[t])))
