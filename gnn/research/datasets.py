"""Graph data sets for research, and the published graph formats read from local files (never downloaded).

A :class:`GraphDataset` is a PyG ``HeteroData`` (reverse edge types included) with the node type scored, one
label per node of that type (1 fraud / anomaly, 0 normal, -1 unlabelled) and the data set's own splits when
it publishes some. Formats read here:

- **heterophilous-graphs ``.npz``** (Platonov et al. 2023; Tolokers, Questions, …): ``node_features [N, F]``,
  ``node_labels [N]``, ``edges [E, 2]``, ``train_masks`` / ``val_masks`` / ``test_masks`` ``[10, N]``;
- **CARE-GNN / GADBench ``.mat``** (YelpChi, Amazon): ``features`` ``[N, F]`` (sparse or dense), ``label``
  ``[1, N]``, one sparse adjacency per relation ``net_*`` (``homo``, the union, is used only without any);
- **PyG / PyGOD ``.pt``**: a ``torch.save``-d ``Data`` (``x``, ``edge_index``, ``y``; PyGOD's ``y`` codes
  anomaly kinds as bits, so any non-zero is an anomaly; ``train_mask`` / ``val_mask`` / ``test_mask`` if
  present). A ``.pt`` is a pickle: load only files you trust.

A ringwatch snapshot folder (a whole exchange, or an investigation's neighbourhood exported by
``ringwatch snapshot --accounts FILE`` / ``--ring RING_ID``) is read by :func:`load_snapshot`. AMLSim, S-FFSD
and Bitcoin-OTC are in :mod:`gnn.research.fraud_sets`; :func:`load_dataset` reads any of them
by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data, HeteroData

from gnn.graph_model import NODE, as_hetero
from graph.errors import RingwatchError


class DatasetError(RingwatchError):
    """A research data set's file is missing, unreadable or not in the format it is loaded as."""


@dataclass
class GraphDataset:
    """A graph to benchmark on.

    Attributes:
        name: the data set's name (``amlsim``, ``sffsd``, …).
        data: the graph; ``data[target_type].x`` float32 features of every node type, reverse edge types included.
        target_type: the node type scored.
        labels: ``[N_target]`` int8: 1 fraud / anomaly, 0 normal, -1 unlabelled.
        splits: the data set's own splits, each ``{"train", "val", "test"}`` → node indices (may be empty).
        source: the file(s) read.
        notes: how labels and features were derived.
    """

    name: str
    data: HeteroData
    target_type: str
    labels: np.ndarray
    splits: list[dict[str, np.ndarray]] = field(default_factory=list)
    source: str = ""
    notes: str = ""

    @property
    def labelled(self) -> np.ndarray:
        """Indices of the labelled target nodes."""
        return np.flatnonzero(self.labels >= 0)

    def summary(self) -> dict[str, object]:
        """Node, edge and label counts (for tables and logs)."""
        return {
            "name": self.name,
            "source": self.source,
            "nodes": {t: int(self.data[t].num_nodes) for t in self.data.node_types},
            "edges": int(
                sum(self.data[e].edge_index.shape[1] for e in self.data.edge_types if not e[1].startswith("rev_"))
            ),
            "labelled": int((self.labels >= 0).sum()),
            "positives": int((self.labels == 1).sum()),
            "splits": len(self.splits),
        }


def one_line(error: BaseException) -> str:
    """A library error's message on one line (some span several: tarfile lists every method it tried)."""
    return " ".join(str(error).split())


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`DatasetError` naming it and what it should hold."""
    if not path.is_file():
        raise DatasetError(f"{what}: expected the file {path}, which does not exist (no download is attempted)")
    return path


def _mask_splits(train: np.ndarray, val: np.ndarray, test: np.ndarray) -> list[dict[str, np.ndarray]]:
    """``[k, N]`` (or ``[N]``) boolean masks → one split per row, as index arrays."""
    t, v, s = (np.atleast_2d(np.asarray(m, dtype=bool)) for m in (train, val, test))
    return [
        {"train": np.flatnonzero(a), "val": np.flatnonzero(b), "test": np.flatnonzero(c)} for a, b, c in zip(t, v, s)
    ]


def _homogeneous(name: str, x: np.ndarray, edges: np.ndarray, labels: np.ndarray, source: str) -> GraphDataset:
    data = HeteroData()
    data[NODE].x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    data[(NODE, "links", NODE)].edge_index = torch.as_tensor(np.asarray(edges, dtype=np.int64).reshape(2, -1))
    return GraphDataset(name, as_hetero(data), NODE, np.asarray(labels, dtype=np.int8), source=source)


def load_npz(path: Path, name: str = "npz") -> GraphDataset:
    """A graph in the heterophilous-graphs ``.npz`` format (module docstring), with its 10 splits."""
    require_file(path, "a heterophilous-graphs .npz (node_features, node_labels, edges, *_masks)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not a readable .npz file: {one_line(e)}") from e
    missing = [k for k in ("node_features", "node_labels", "edges") if k not in arrays]
    if missing:
        raise DatasetError(f"{path} lacks the arrays {missing} of the heterophilous-graphs .npz format")
    ds = _homogeneous(name, arrays["node_features"], arrays["edges"].T, arrays["node_labels"], str(path))
    if all(f"{k}_masks" in arrays for k in ("train", "val", "test")):
        ds.splits = _mask_splits(arrays["train_masks"], arrays["val_masks"], arrays["test_masks"])
    return ds


def load_mat(path: Path, name: str = "mat") -> GraphDataset:
    """A graph in the CARE-GNN / GADBench ``.mat`` format: one edge type per ``net_*`` relation."""
    import scipy.io
    import scipy.sparse as sp

    require_file(path, "a CARE-GNN .mat (features, label, net_* relations)")
    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        raise DatasetError(f"{path} is not a readable .mat file: {one_line(e)}") from e
    if "features" not in mat or "label" not in mat:
        raise DatasetError(f"{path} lacks 'features' or 'label' of the CARE-GNN .mat format")
    features = mat["features"]
    x = features.toarray() if sp.issparse(features) else np.asarray(features)
    relations = sorted(k for k in mat if k.startswith("net_")) or (["homo"] if "homo" in mat else [])
    if not relations:
        raise DatasetError(f"{path} holds no relation (net_* or homo) of the CARE-GNN .mat format")
    data = HeteroData()
    data[NODE].x = torch.as_tensor(x.astype(np.float32))
    for rel in relations:
        adj = sp.coo_matrix(mat[rel])
        data[(NODE, rel, NODE)].edge_index = torch.as_tensor(np.vstack([adj.row, adj.col]).astype(np.int64))
    labels = np.asarray(mat["label"]).ravel().astype(np.int8)
    return GraphDataset(name, as_hetero(data), NODE, labels, source=str(path))


def load_pt(path: Path, name: str = "pt") -> GraphDataset:
    """A ``torch.save``-d PyG ``Data`` (PyGOD's ``.pt`` data sets): ``y != 0`` is an anomaly."""
    require_file(path, "a .pt file holding a PyG Data object")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)  # a pickle: trusted files only
    except Exception as e:  # torch.load raises many kinds (pickle, zip, runtime) for a bad file
        raise DatasetError(f"{path} is not a readable torch file: {type(e).__name__}: {one_line(e)}") from e
    if not isinstance(data, Data) or getattr(data, "x", None) is None or getattr(data, "y", None) is None:
        raise DatasetError(f"{path} does not hold a PyG Data with x and y (got {type(data).__name__})")
    y = data.y.cpu().numpy()
    labels = (y != 0).astype(np.int8) if y.ndim == 1 else (y.reshape(len(y), -1)[:, 0] != 0).astype(np.int8)
    ds = _homogeneous(name, data.x.cpu().numpy(), data.edge_index.cpu().numpy(), labels, str(path))
    if all(getattr(data, f"{k}_mask", None) is not None for k in ("train", "val", "test")):
        masks = [getattr(data, f"{k}_mask").cpu().numpy() for k in ("train", "val", "test")]
        masks = [m.T if m.ndim == 2 and m.shape[0] == len(labels) else m for m in masks]
        ds.splits = _mask_splits(*masks)
    return ds


def load_snapshot(path: Path, name: str = "snapshot") -> GraphDataset:
    """A ringwatch snapshot folder (``ringwatch snapshot``, whole graph or ``--accounts`` / ``--ring``
    neighbourhood): accounts scored, any known threat label is 1, ``benign`` 0, unlabelled -1."""
    from gnn.graph_data import LABEL_CODES, UNLABELLED
    from gnn.snapshot import read_snapshot
    from graph.schema import ACCOUNT, BENIGN

    if not (Path(path) / "manifest.json").is_file():
        raise DatasetError(
            f"a ringwatch snapshot: expected the folder {path} with a manifest.json, which does not exist"
        )
    graph = read_snapshot(Path(path))
    labels = np.where(graph.labels == UNLABELLED, -1, (graph.labels != LABEL_CODES[BENIGN]).astype(np.int8))
    return GraphDataset(name, graph.data, ACCOUNT.label, labels.astype(np.int8), source=str(path))


def loaders() -> dict[str, Callable[[Path], GraphDataset]]:
    """Data set name → loader (the names ``ringwatch research bench`` accepts)."""
    from gnn.research.fraud_sets import load_amlsim, load_bitcoin_otc, load_sffsd

    return {
        "amlsim": load_amlsim,
        "sffsd": load_sffsd,
        "bitcoin-otc": load_bitcoin_otc,
        "npz": load_npz,
        "mat": load_mat,
        "pt": load_pt,
        "snapshot": load_snapshot,
    }


def load_dataset(name: str, path: Path) -> GraphDataset:
    """Read data set ``name`` (a key of :func:`loaders`) from ``path``.

    Raises:
        ValueError: an unknown name.
        DatasetError: the file is absent or not in the expected format.
    """
    table = loaders()
    if name not in table:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(table)}")
    return table[name](Path(path))
