"""Research loaders: each published format read from a small file written here, and bad files as one error."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from gnn.graph_model import NODE
from gnn.research.datasets import DatasetError, load_dataset, load_mat, load_npz, load_pt
from gnn.research.fraud_sets import load_amlsim, load_bitcoin_otc, load_sffsd


def _rev(ds, rel: str) -> torch.Tensor:
    return next(ds.data[e].edge_index for e in ds.data.edge_types if e[1] == f"rev_{rel}")


def test_npz_format_keeps_features_labels_edges_and_the_ten_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 10, 30)) < [[[0.5]], [[0.25]], [[0.25]]]
    edges = np.array([[0, 1], [1, 2], [5, 7]])
    path = tmp_path / "tolokers.npz"
    np.savez(
        path,
        node_features=rng.random((30, 4)),
        node_labels=np.arange(30) % 2,
        edges=edges,
        train_masks=masks[0],
        val_masks=masks[1],
        test_masks=masks[2],
    )
    ds = load_npz(path)
    assert ds.target_type == NODE and ds.data[NODE].x.shape == (30, 4)
    assert ds.labels.tolist() == (np.arange(30) % 2).tolist()
    assert ds.data[(NODE, "links", NODE)].edge_index.T.tolist() == edges.tolist()
    assert _rev(ds, "links").T.tolist() == edges[:, ::-1].tolist()  # messages flow both ways
    assert len(ds.splits) == 10
    assert ds.splits[3]["val"].tolist() == np.flatnonzero(masks[1][3]).tolist()


def test_mat_format_one_edge_type_per_relation(tmp_path: Path) -> None:
    adj = sp.csr_matrix(([1.0, 1.0], ([0, 2], [1, 3])), shape=(4, 4))
    path = tmp_path / "YelpChi.mat"
    scipy.io.savemat(
        path,
        {
            "features": sp.csr_matrix(np.eye(4, 3)),
            "label": np.array([[0, 1, 0, 1]]),
            "net_rur": adj,
            "net_rtr": sp.csr_matrix(([1.0], ([3], [0])), shape=(4, 4)),
            "homo": adj,
        },
    )
    ds = load_mat(path)
    assert ds.labels.tolist() == [0, 1, 0, 1]
    assert ds.data[NODE].x.numpy().tolist() == np.eye(4, 3).tolist()
    relations = sorted(e[1] for e in ds.data.edge_types if not e[1].startswith("rev_"))
    assert relations == ["net_rtr", "net_rur"]  # homo (their union) is not added again
    assert ds.data[(NODE, "net_rtr", NODE)].edge_index.T.tolist() == [[3, 0]]


def test_pt_format_reads_a_pyg_data_with_masks(tmp_path: Path) -> None:
    n = 12
    data = Data(
        x=torch.randn(n, 5),
        edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        y=torch.tensor([0, 1, 2, 3] * 3),  # PyGOD codes anomaly kinds as bits: any non-zero is an anomaly
        train_mask=torch.arange(n) < 6,
        val_mask=(torch.arange(n) >= 6) & (torch.arange(n) < 9),
        test_mask=torch.arange(n) >= 9,
    )
    path = tmp_path / "inj_cora.pt"
    torch.save(data, path)
    ds = load_pt(path)
    assert ds.labels.tolist() == [0, 1, 1, 1] * 3
    assert ds.splits[0]["test"].tolist() == [9, 10, 11]
    assert ds.data[(NODE, "links", NODE)].edge_index.shape == (2, 3)


def _amlsim_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes = pd.DataFrame(
        {"nodeid": [10, 11, 12, 13], "isFraud": [0, 1, 1, 0], "init_balance": [100.0, 50.0, 60.0, 70.0]}
    )
    nodes["fraudStep"] = [-1, 5, -1, -1]
    tx = pd.DataFrame(
        {
            "sourceNodeId": [11, 12, 11, 10],
            "targetNodeId": [12, 11, 12, 13],
            "value": [10.0, 20.0, 30.0, 5.0],
            "time": [1, 2, 3, 4],
        }
    )
    return nodes, tx


def test_amlsim_from_the_published_tgz_and_from_a_folder(tmp_path: Path) -> None:
    nodes, tx = _amlsim_frames()
    folder = tmp_path / "20K_small"
    folder.mkdir()
    nodes.to_csv(folder / "nodes.csv", index=False, lineterminator="\r\n")
    tx.to_csv(folder / "transactions.csv", index=False, lineterminator="\r\n")
    archive = tmp_path / "20K_small.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="20K_small")
    for path in (archive, folder):
        ds = load_amlsim(path)
        assert ds.labels.tolist() == [0, 1, 1, 0]
        edges = ds.data[("account", "transfers", "account")].edge_index.T.tolist()
        assert sorted(edges) == [[0, 3], [1, 2], [2, 1]]  # distinct pairs: 11→12 twice is one edge
        x = ds.data["account"].x
        assert x.shape[0] == 4 and x[1, 0].item() == pytest.approx(np.log1p(50.0))
    # fraudStep is set for fraud accounts only: it must not be a feature
    other = nodes.assign(fraudStep=[-1, -1, -1, -1])
    other.to_csv(folder / "nodes.csv", index=False)
    assert torch.equal(load_amlsim(folder).data["account"].x, ds.data["account"].x)


def test_sffsd_is_heterogeneous_and_keeps_unlabelled_accounts_unlabelled(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            "Time": range(6),
            "Source": ["S1", "S1", "S2", "S3", "S4", "S4"],
            "Target": ["T1", "T2", "T1", "T1", "T2", "T2"],
            "Amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "Location": ["L1", "L1", "L2", "L1", "L2", "L2"],
            "Type": ["TP1"] * 6,
            "Labels": [0, 1, 0, 2, 2, 0],
        }
    )
    archive = tmp_path / "S-FFSD.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("S-FFSD.csv", rows.to_csv(index=False))
    ds = load_sffsd(archive)
    # S1: a fraud transaction → 1; S2: only legitimate → 0; S3: only unlabelled → -1; S4: 2 and 0 → 0
    assert ds.labels.tolist() == [1, 0, -1, 0]
    assert set(ds.data.node_types) == {"account", "merchant", "location", "txtype"}
    assert ds.data["merchant"].num_nodes == 2 and ds.data["txtype"].num_nodes == 1
    assert sorted(ds.data[("account", "pays", "merchant")].edge_index.T.tolist()) == [
        [0, 0],
        [0, 1],
        [1, 0],
        [2, 0],
        [3, 1],
    ]
    csv = tmp_path / "S-FFSD.csv"
    rows.to_csv(csv, index=False)
    assert load_sffsd(csv).labels.tolist() == ds.labels.tolist()


def test_bitcoin_otc_is_unsigned_and_maps_rev2_labels(tmp_path: Path) -> None:
    network = pd.DataFrame(
        {"a": [1, 1, 2, 3], "b": [2, 3, 3, 4], "r": [5, -10, 2, -1], "t": [1.0e9, 1.1e9, 1.2e9, 1.3e9]}
    )
    network.to_csv(tmp_path / "otc_network.csv", index=False, header=False)
    (tmp_path / "otc_gt.csv").write_text("2,+1\n3,-1\n9,-1\n", encoding="utf-8")
    ds = load_bitcoin_otc(tmp_path)
    assert ds.labels.tolist() == [-1, 0, 1, -1]  # node 9 has no edge: not in the graph
    assert ds.data[("account", "rates", "account")].edge_index.shape == (2, 4)
    flipped = network.assign(r=-network["r"])
    flipped.to_csv(tmp_path / "otc_network.csv", index=False, header=False)
    again = load_bitcoin_otc(tmp_path / "otc_network.csv")
    assert torch.equal(again.data["account"].x, ds.data["account"].x)  # the ratings' signs reach nothing


@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [
        ("npz", lambda p: None, "expected the file"),
        ("npz", lambda p: p.write_bytes(b"not a zip"), "not a readable .npz"),
        ("npz", lambda p: np.savez(p, node_features=np.ones((2, 2))), "lacks the arrays"),
        ("mat", lambda p: p.write_bytes(b"garbage"), "not a readable .mat"),
        ("pt", lambda p: p.write_bytes(b"garbage"), "not a readable torch file"),
        ("pt", lambda p: torch.save({"x": 1}, p), "does not hold a PyG Data"),
        ("amlsim", lambda p: p.write_bytes(b"garbage"), "not a readable .tgz"),
        ("sffsd", lambda p: p.write_text("Time,Source\n1,S1\n"), "lacks the columns"),
        ("sffsd", lambda p: None, "expected the file"),
        ("bitcoin-otc", lambda p: p.write_text("1,2,3,4\n"), "otc_gt.csv"),
    ],
)
def test_a_bad_or_missing_file_is_one_readable_error(tmp_path: Path, name, make, needle) -> None:
    path = tmp_path / {"npz": "d.npz", "mat": "d.mat", "pt": "d.pt", "amlsim": "d.tgz", "sffsd": "d.csv"}.get(
        name, "otc_network.csv"
    )
    make(path)
    with pytest.raises(DatasetError, match=needle) as info:
        load_dataset(name, path)
    assert "\n" not in str(info.value)


def test_an_unknown_data_set_name_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown data set 'yelp'"):
        load_dataset("yelp", tmp_path)


def test_in_memory_csv_helpers_read_bytes() -> None:
    # the .tgz and .zip members are read from bytes, never extracted to disk
    assert pd.read_csv(io.BytesIO(b"a,b\n1,2\n")).shape == (1, 2)
