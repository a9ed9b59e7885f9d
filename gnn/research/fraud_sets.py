"""Public fraud graphs in their published formats, from local files: AMLSim, S-FFSD and Bitcoin-OTC.

- **AMLSim** (IBM/AMLSim ``sample/*.tgz``): ``nodes.csv`` (``nodeid``, ``isFraud``, ``init_balance``,
  ``fraudStep``) and ``transactions.csv`` (``sourceNodeId``, ``targetNodeId``, ``value``, ``time``), read from
  the published ``.tgz`` (its ``*/nodes.csv`` and ``*/transactions.csv`` members) or a folder holding both.
  Accounts are the nodes, each distinct (sender, receiver) pair one ``transfers`` edge; features are
  ``init_balance`` and the account's transfer counts, amounts, counterparties and active steps.
  ``fraudStep`` is left out: it is set for fraud accounts only, so it would leak the label.
- **S-FFSD** (AI4Risk/antifraud ``data/S-FFSD.zip`` or the ``S-FFSD.csv`` inside): transactions ``Time, Source,
  Target, Amount, Location, Type, Labels``. A heterogeneous graph: ``account`` (``Source``, scored) →
  ``merchant`` (``Target``), ``location`` and ``txtype`` nodes, one edge per distinct pair. An account is fraud
  when it has any fraud transaction (``Labels`` 1), normal when its labelled transactions are all legitimate
  (0), and stays unlabelled when all its transactions are unlabelled (2).
- **Bitcoin-OTC with REV2 ground truth** (fpour/TGBase ``data/otc/``): ``otc_network.csv`` (``rater, ratee,
  rating, unix_time``, no header) and ``otc_gt.csv`` (``node, label``; -1 fraudulent → 1, +1 benign → 0), read
  from a folder holding both or given the network file (the labels next to it). **The graph is unsigned**: the
  ratings are dropped, since REV2's labels were derived from them. Features are degrees and activity times.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from gnn.graph_model import as_hetero
from gnn.research.datasets import DatasetError, GraphDataset, one_line, require_file

ACCOUNT = "account"


def _read_csv(raw: bytes | Path, what: str, columns: list[str], **kw: object) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(raw) if isinstance(raw, bytes) else raw, **kw)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DatasetError(f"{what} is not a readable CSV: {one_line(e)}") from e
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetError(f"{what} lacks the columns {missing} (has {list(frame.columns)})")
    return frame


def _log_stats(frame: pd.DataFrame, key: str, prefix: str, n: int) -> pd.DataFrame:
    """Per ``key`` (0..n-1): log transfer count, log amount sum / mean / max, distinct counterparties."""
    g = frame.groupby(key)
    stats = pd.DataFrame(
        {
            f"{prefix}_count": g.size(),
            f"{prefix}_amount_sum": g["amount"].sum(),
            f"{prefix}_amount_mean": g["amount"].mean(),
            f"{prefix}_amount_max": g["amount"].max(),
            f"{prefix}_first": g["time"].min(),
            f"{prefix}_last": g["time"].max(),
        }
    ).reindex(range(n))
    for c in stats.columns:
        if "first" not in c and "last" not in c:
            stats[c] = np.log1p(stats[c].fillna(0.0))
    return stats.fillna(-1.0)


def _edges(src: np.ndarray, dst: np.ndarray) -> torch.Tensor:
    pairs = np.unique(np.stack([src, dst]).astype(np.int64), axis=1)
    return torch.from_numpy(pairs)


# -- AMLSim ------------------------------------------------------------------------------------------


def _amlsim_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if path.is_dir():
        nodes = require_file(path / "nodes.csv", "AMLSim accounts")
        tx = require_file(path / "transactions.csv", "AMLSim transfers")
        return (
            _read_csv(nodes, str(nodes), ["nodeid", "isFraud", "init_balance"]),
            _read_csv(tx, str(tx), ["sourceNodeId", "targetNodeId", "value", "time"]),
        )
    require_file(path, "an AMLSim sample (.tgz holding */nodes.csv and */transactions.csv, or their folder)")
    try:
        with tarfile.open(path) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if "nodes.csv" not in members or "transactions.csv" not in members:
                raise DatasetError(f"{path} holds no nodes.csv and transactions.csv (has {sorted(members)})")
            raw = {k: tar.extractfile(members[k]).read() for k in ("nodes.csv", "transactions.csv")}  # type: ignore[union-attr]
    except (tarfile.TarError, OSError) as e:
        raise DatasetError(f"{path} is not a readable .tgz: {one_line(e)}") from e
    return (
        _read_csv(raw["nodes.csv"], f"{path}:nodes.csv", ["nodeid", "isFraud", "init_balance"]),
        _read_csv(
            raw["transactions.csv"], f"{path}:transactions.csv", ["sourceNodeId", "targetNodeId", "value", "time"]
        ),
    )


def load_amlsim(path: Path) -> GraphDataset:
    """An AMLSim sample as an account graph (module docstring)."""
    nodes, tx = _amlsim_tables(Path(path))
    index = pd.Index(nodes["nodeid"])
    n = len(index)
    src, dst = index.get_indexer(tx["sourceNodeId"]), index.get_indexer(tx["targetNodeId"])
    if (src < 0).any() or (dst < 0).any():
        raise DatasetError(f"{path}: {int((src < 0).sum() + (dst < 0).sum())} transfer ends are not in nodes.csv")
    frame = pd.DataFrame({"src": src, "dst": dst, "amount": tx["value"].astype(float), "time": tx["time"]})
    out = _log_stats(frame, "src", "out", n)
    inc = _log_stats(frame, "dst", "in", n)
    partners = pd.DataFrame(
        {
            "out_partners": np.log1p(frame.groupby("src")["dst"].nunique().reindex(range(n)).fillna(0)),
            "in_partners": np.log1p(frame.groupby("dst")["src"].nunique().reindex(range(n)).fillna(0)),
        }
    )
    x = pd.concat([np.log1p(nodes[["init_balance"]].clip(lower=0)).reset_index(drop=True), out, inc, partners], axis=1)
    data = HeteroData()
    data[ACCOUNT].x = torch.tensor(x.to_numpy(np.float32))
    data[(ACCOUNT, "transfers", ACCOUNT)].edge_index = _edges(src, dst)
    labels = nodes["isFraud"].to_numpy().astype(np.int8)
    notes = "features: log init_balance, per-direction transfer count/amount/partners/steps; fraudStep left out"
    return GraphDataset("amlsim", as_hetero(data), ACCOUNT, labels, source=str(path), notes=notes)


# -- S-FFSD ------------------------------------------------------------------------------------------

SFFSD_COLUMNS = ["Time", "Source", "Target", "Amount", "Location", "Type", "Labels"]


def _sffsd_table(path: Path) -> pd.DataFrame:
    require_file(path, "S-FFSD (S-FFSD.zip holding S-FFSD.csv, or the CSV itself)")
    if path.suffix.lower() != ".zip":
        return _read_csv(path, str(path), SFFSD_COLUMNS)
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.lower().endswith(".csv")]
            if not names:
                raise DatasetError(f"{path} holds no CSV (expected S-FFSD.csv)")
            raw = z.read(names[0])
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetError(f"{path} is not a readable .zip: {one_line(e)}") from e
    return _read_csv(raw, f"{path}:{names[0]}", SFFSD_COLUMNS)


def load_sffsd(path: Path) -> GraphDataset:
    """S-FFSD as a heterogeneous graph scoring sending accounts (module docstring)."""
    tx = _sffsd_table(Path(path))
    codes = {c: pd.factorize(tx[c].astype(str)) for c in ("Source", "Target", "Location", "Type")}
    frame = pd.DataFrame({k.lower(): v[0] for k, v in codes.items()})
    frame["amount"], frame["time"] = tx["Amount"].astype(float).clip(lower=0), tx["Time"].astype(float)
    n = len(codes["Source"][1])
    t_max = max(float(frame["time"].max()), 1.0)
    frame["time"] = frame["time"] / t_max
    data = HeteroData()
    stats = _log_stats(frame, "source", "tx", n)
    for col in ("target", "location", "type"):
        stats[f"{col}s"] = np.log1p(frame.groupby("source")[col].nunique().reindex(range(n)).fillna(0))
    data[ACCOUNT].x = torch.tensor(stats.to_numpy(np.float32))
    for col, node_type, rel in (
        ("target", "merchant", "pays"),
        ("location", "location", "at"),
        ("type", "txtype", "of_type"),
    ):
        m = len(codes[col.capitalize()][1])
        side = _log_stats(frame, col, "tx", m).drop(columns=["tx_first", "tx_last"])
        side["accounts"] = np.log1p(frame.groupby(col)["source"].nunique().reindex(range(m)).fillna(0))
        data[node_type].x = torch.tensor(side.to_numpy(np.float32))
        data[(ACCOUNT, rel, node_type)].edge_index = _edges(frame["source"].to_numpy(), frame[col].to_numpy())
    label = tx["Labels"].to_numpy()
    fraud = np.bincount(frame["source"][label == 1], minlength=n) > 0
    legit = np.bincount(frame["source"][label == 0], minlength=n) > 0
    labels = np.where(fraud, 1, np.where(legit, 0, -1)).astype(np.int8)
    notes = "account label: any fraud transaction (1); only legitimate labelled ones (0); only label-2 rows: unlabelled"
    return GraphDataset("sffsd", as_hetero(data), ACCOUNT, labels, source=str(path), notes=notes)


# -- Bitcoin-OTC -------------------------------------------------------------------------------------


def load_bitcoin_otc(path: Path) -> GraphDataset:
    """Bitcoin-OTC with REV2 ground truth, **unsigned** (module docstring)."""
    path = Path(path)
    network = path / "otc_network.csv" if path.is_dir() else path
    require_file(network, "Bitcoin-OTC ratings (otc_network.csv: rater, ratee, rating, unix_time)")
    gt = require_file(network.parent / "otc_gt.csv", "Bitcoin-OTC REV2 labels (otc_gt.csv: node, label)")
    edges = _read_csv(
        network, str(network), ["rater", "ratee", "time"], header=None, names=["rater", "ratee", "rating", "time"]
    )
    truth = _read_csv(gt, str(gt), ["node", "label"], header=None, names=["node", "label"])
    ids = pd.Index(np.unique(np.concatenate([edges["rater"], edges["ratee"]])))
    n = len(ids)
    src, dst = ids.get_indexer(edges["rater"]), ids.get_indexer(edges["ratee"])
    years = (edges["time"].astype(float) - float(edges["time"].min())) / (365.25 * 86400)
    frame = pd.DataFrame({"src": src, "dst": dst, "amount": 1.0, "time": years})  # unsigned: the rating is dropped
    out = _log_stats(frame, "src", "out", n)[["out_count", "out_first", "out_last"]]
    inc = _log_stats(frame, "dst", "in", n)[["in_count", "in_first", "in_last"]]
    data = HeteroData()
    data[ACCOUNT].x = torch.tensor(pd.concat([out, inc], axis=1).to_numpy(np.float32))
    data[(ACCOUNT, "rates", ACCOUNT)].edge_index = _edges(src, dst)
    labels = np.full(n, -1, dtype=np.int8)
    where = ids.get_indexer(truth["node"])
    known = where >= 0
    labels[where[known]] = (truth["label"].astype(int).to_numpy()[known] == -1).astype(np.int8)
    notes = "unsigned graph (ratings dropped: REV2 labels derive from them); features: degrees, first/last activity"
    return GraphDataset("bitcoin-otc", as_hetero(data), ACCOUNT, labels, source=str(network), notes=notes)
