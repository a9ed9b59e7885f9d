"""The online API's feature store: every node's model inputs as the batch scoring run computed them.

Written by the batch job next to its plan (``<data dir>/scoring/<run id>/features/``) and read by the online
API (:mod:`serving.api.scorer`), so that a live score reads only the account's neighbourhood *structure* from
Neo4j and takes its neighbours' inputs from here instead of recomputing features for most of the graph.

Per node type ``<label>`` (one ``.npy`` each, memory-mapped on load: the pages a request touches are read, the
rest stay on disk):

- ``ids.<label>.npy`` — the node keys, UTF-8, sorted (a binary search finds a node: :meth:`FeatureStore.find`);
- ``x.<label>.npy`` — the raw features ``[N, F]`` float32 (:mod:`gnn.features`; the model standardises them);
- ``h<l>.<label>.npy`` for ``l = 1 … num_layers - 1`` — the GNN's embeddings after layer ``l`` (from the same
  layer-wise pass as the batch scores, :meth:`gnn.model.RiskSAGE.inference`): the last layer of an account
  needs only its neighbours' embeddings of the layer before, so a hub's embedding is read, not recomputed
  from its thousands of users;
- ``baseline.Account.npy`` — the boosted baseline's input rows (:func:`gnn.baseline.neighbourhood_features`),
  when the model ships the baseline for some threat;
- ``known_ties.Account.npy`` — per account and threat, its known-fraud ties (:func:`gnn.known_ties.known_fraud_ties`),
  which the model's calibration weighs: a stored score's inputs are the run's, labels included;
- ``digest.Account.npy`` — per account, an order-free digest of its relationships' rows
  (:func:`incident_digests`): the API recomputes an account whose digest changed (new events) since the run;
- ``store.json`` — run, model version, layers, the edge types the batch graph had (an edge type with no edge
  at all sends no message), shapes.

Size at 1M accounts: the arrays take ``4 × (F + hidden × (num_layers − 1))`` bytes per node plus the keys.
"""

from __future__ import annotations

import functools
import json
import shutil
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gnn.baseline import neighbourhood_features
from gnn.estimator import RiskModel
from gnn.graph_data import RiskGraph
from gnn.known_ties import known_fraud_ties
from gnn.source_choice import KNOWN_TIES
from gnn.train import standardised
from graph import schema as s
from graph.queries.export import REL_EXPORTS_BY_TYPE

STORE_DIR = "features"
STORE_FILE = "store.json"
#: Bumped when the files change meaning; an older store is not used.
STORE_VERSION = 2


_MASK = (1 << 64) - 1
#: One odd multiplier per column position (and one for the type), so that a row's columns cannot trade values.
_MULTIPLIERS = [(0x9E3779B97F4A7C15 * (2 * i + 1)) & _MASK for i in range(16)]


def _string_bits(values: np.ndarray) -> np.ndarray:
    """Stable 64-bit hashes of strings (pandas' keyed SipHash, the same in every process); 0 for a null."""
    missing = pd.isna(values)
    hashed = pd.util.hash_array(np.where(missing, "", values).astype(object), categorize=False)
    hashed[missing] = 0
    return hashed


def _column_bits(column: pd.Series, kind: str) -> np.ndarray:
    """A column's values as uint64 (a double by its bits, a string by :func:`_string_bits`, a null as 0)."""
    if kind == "string":
        return _string_bits(column.to_numpy(dtype=object, na_value=None))
    if kind == "double":
        return column.to_numpy(dtype=np.float64, na_value=0.0).view(np.uint64)
    return column.to_numpy(dtype=np.int64, na_value=0).view(np.uint64)


@functools.lru_cache(maxsize=64)
def _type_salt(rel_type: str) -> int:
    return int(_string_bits(np.array([rel_type], dtype=object))[0])


def row_digests(rel_type: str, frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per relationship row of ``rel_type`` (a frame with the export's columns): every column's value
    times its own multiplier, summed with the type's salt (wrapping). :func:`row_digest` gives a row read live
    the same number."""
    columns = REL_EXPORTS_BY_TYPE[rel_type].columns
    out = np.full(len(frame), _type_salt(rel_type), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, c in enumerate(columns):
            out += _column_bits(frame[c.name], c.kind) * np.uint64(_MULTIPLIERS[i])
    return out


def row_digest(rel_type: str, row: list[Any]) -> int:
    """:func:`row_digests` of one row as read (a list in the export's column order), in plain Python."""
    strings = [row[i] for i in _STRING_COLUMNS[rel_type]]
    return _row_sum(rel_type, row, _string_bits(np.array(strings, dtype=object)).tolist())


#: Relationship type → positions of its string columns.
_STRING_COLUMNS: dict[str, list[int]] = {
    t: [i for i, c in enumerate(e.columns) if c.kind == "string"] for t, e in REL_EXPORTS_BY_TYPE.items()
}


def _row_sum(rel_type: str, row: list[Any], string_bits: list[int]) -> int:
    """:func:`row_digest` with the row's string columns already hashed (``string_bits``, in column order)."""
    columns = REL_EXPORTS_BY_TYPE[rel_type].columns
    total = _type_salt(rel_type)
    hashed = dict(zip(_STRING_COLUMNS[rel_type], string_bits))
    for i, c in enumerate(columns):
        v = row[i]
        if v is None:
            continue
        if c.kind == "string":
            bits = hashed[i]
        elif c.kind == "double":
            bits = struct.unpack("<Q", struct.pack("<d", float(v)))[0]
        else:
            bits = int(v) & _MASK
        total = (total + bits * _MULTIPLIERS[i]) & _MASK
    return total


def incident_digests(rels: Mapping[str, pd.DataFrame], account_ids: np.ndarray) -> np.ndarray:
    """Per account of ``account_ids``, the wrapping sum of :func:`row_digests` over its relationships (out of
    it, and into it for account-to-account types): equal when, and only when (up to hash collisions), its
    relationships and their properties are the ones the digest was taken of — an event adds a relationship or
    moves a count.

    Args:
        rels: type → frame with the export's columns (``src``, ``dst`` keys; missing types: none).
        account_ids: the accounts, any order.
    """
    index = pd.Index(account_ids)
    out = np.zeros(len(index), dtype=np.uint64)
    for rel in s.DOMAIN_RELS:
        frame = rels.get(rel.type)
        if frame is None or not len(frame):
            continue
        digests = row_digests(rel.type, frame)
        ends = [frame["src"]] + ([frame["dst"]] if rel.target == s.ACCOUNT else [])
        for end in ends:
            pos = index.get_indexer(pd.Index(end.astype(object)))
            hit = pos >= 0
            np.add.at(out, pos[hit], digests[hit])
    return out


def live_digests(rows: Mapping[str, list[list[Any]]], account_ids: list[str]) -> list[int]:
    """:func:`incident_digests` of rows as read from Neo4j (type → rows in the export's column order); every
    string of the rows is hashed in one call (a call costs more than the strings of a request)."""
    wanted = {a: 0 for a in account_ids}
    picked: list[tuple[str, list[Any], tuple[Any, ...]]] = []
    for rel in s.DOMAIN_RELS:
        for row in rows.get(rel.type, []):
            ends = (row[0], row[1]) if rel.target == s.ACCOUNT else (row[0],)
            if any(e in wanted for e in ends):
                picked.append((rel.type, row, ends))
    strings = [row[i] for rel_type, row, _ in picked for i in _STRING_COLUMNS[rel_type]]
    bits = iter(_string_bits(np.array(strings, dtype=object)).tolist() if strings else [])
    for rel_type, row, ends in picked:
        digest = _row_sum(rel_type, row, [next(bits) for _ in _STRING_COLUMNS[rel_type]])
        for end in ends:
            if end in wanted:
                wanted[end] = (wanted[end] + digest) & _MASK
    return [wanted[a] for a in account_ids]


@dataclass
class FeatureStore:
    """A written store, memory-mapped (see the module docstring)."""

    folder: Path
    meta: dict[str, Any]
    ids: dict[str, np.ndarray]
    x: dict[str, np.ndarray]
    layers: list[dict[str, np.ndarray]]  # layers[l - 1][label]: embeddings after layer l
    baseline: np.ndarray | None
    known_ties: np.ndarray
    digest: np.ndarray

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])

    @property
    def model_version(self) -> str:
        return str(self.meta["model_version"])

    @property
    def edge_types(self) -> list[tuple[str, str, str]]:
        """The edge types with at least one edge in the batch graph (others send no message)."""
        return [(str(e[0]), str(e[1]), str(e[2])) for e in self.meta["edge_types"]]

    def find(self, label: str, keys: list[str] | np.ndarray) -> np.ndarray:
        """Rows of ``keys`` among ``label``'s nodes, -1 for keys the store does not hold."""
        ids = self.ids[label]
        # Its own width: cast to the store's, a longer key would be cut to a stored one.
        wanted = np.array([str(k).encode() for k in keys], dtype=bytes)
        if not len(ids) or not len(wanted):
            return np.full(len(wanted), -1, dtype=np.int64)
        pos = np.searchsorted(ids, wanted)
        pos = np.minimum(pos, len(ids) - 1)
        return np.where(ids[pos] == wanted, pos, -1).astype(np.int64)

    def nbytes(self) -> int:
        arrays = [*self.ids.values(), *self.x.values(), *(a for layer in self.layers for a in layer.values())]
        arrays += [self.digest, self.known_ties] + ([self.baseline] if self.baseline is not None else [])
        return int(sum(a.nbytes for a in arrays))

    @classmethod
    def load(cls, folder: Path) -> FeatureStore:
        """Open a store written by :func:`write_feature_store` (memory-mapped).

        Raises:
            OSError / ValueError: the folder holds no complete store of this version.
        """
        meta = json.loads((folder / STORE_FILE).read_text(encoding="utf-8"))
        if meta.get("store_version") != STORE_VERSION:
            raise ValueError(f"{folder}: feature store version {meta.get('store_version')}, not {STORE_VERSION}")

        def arr(name: str) -> np.ndarray:
            return np.load(folder / f"{name}.npy", mmap_mode="r")

        labels = [n.label for n in s.DOMAIN_NODES]
        return cls(
            folder=folder,
            meta=meta,
            ids={t: arr(f"ids.{t}") for t in labels},
            x={t: arr(f"x.{t}") for t in labels},
            layers=[{t: arr(f"h{layer}.{t}") for t in labels} for layer in range(1, int(meta["num_layers"]))],
            baseline=arr(f"baseline.{s.ACCOUNT.label}") if meta["baseline"] else None,
            known_ties=arr(f"known_ties.{s.ACCOUNT.label}"),
            digest=arr(f"digest.{s.ACCOUNT.label}"),
        )


def latest_store(scoring_dir: Path, model_version: str) -> FeatureStore | None:
    """The newest store under ``scoring_dir``'s runs written with ``model_version``; None when there is none."""
    found: list[tuple[float, Path]] = []
    for run in scoring_dir.iterdir() if scoring_dir.is_dir() else []:
        meta_file = run / STORE_DIR / STORE_FILE
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if meta.get("model_version") == model_version and meta.get("store_version") == STORE_VERSION:
            found.append((float(meta.get("written_at", 0.0)), run / STORE_DIR))
    for _, folder in sorted(found, reverse=True):
        try:
            return FeatureStore.load(folder)
        except (OSError, ValueError):
            continue
    return None


#: The sources of a threat's score that read the baseline's margins.
BASELINE_SOURCES = ("baseline", "ensemble")


def baseline_used(model: RiskModel) -> bool:
    """The model ships the baseline (alone or averaged) for at least one threat."""
    return model.baseline is not None and any(c in BASELINE_SOURCES for c in model.choice.values())


@dataclass
class StagedStore:
    """A store whose arrays are written (in ``<run folder>/features.tmp``) but not yet visible: the scoring job
    stages it during its one inference pass, saves its plan, then publishes it (:meth:`publish`), so a store is never
    seen without the plan of its run.

    Attributes:
        run_folder: the scoring run's folder.
        raw: the uncalibrated scores of the same pass, as :meth:`gnn.estimator.RiskModel.raw_scores` returns
            them (GNN logits; baseline margins only where a threat ships the baseline, NaN elsewhere, and none
            when no threat does): ``model.calibrate(raw)`` are the run's scores.
        meta: ``store.json`` so far (:meth:`publish` adds the run, the model version and the time).
    """

    run_folder: Path
    raw: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def staging(self) -> Path:
        return self.run_folder / (STORE_DIR + ".tmp")

    def publish(self, run_id: str, model_version: str) -> dict[str, Any]:
        """Write ``store.json`` and rename the folder into place (replacing a store already there); returns
        ``store.json``."""
        meta = {**self.meta, "run_id": run_id, "model_version": model_version, "written_at": time.time()}
        (self.staging / STORE_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        final = self.run_folder / STORE_DIR
        shutil.rmtree(final, ignore_errors=True)
        self.staging.replace(final)
        return meta


def _key_bytes(keys: np.ndarray) -> np.ndarray:
    """Node keys as fixed-width UTF-8 bytes (NumPy's ``S`` dtype: what :meth:`FeatureStore.find` searches)."""
    if not len(keys):
        return np.array([], dtype="S1")
    try:
        return np.asarray(keys, dtype=str).astype(np.bytes_)  # ASCII keys (hashes, ids): one C loop
    except UnicodeEncodeError:
        return np.array([str(k).encode() for k in keys], dtype=bytes)


def _shipped_margins(model: RiskModel, rows: np.ndarray) -> np.ndarray:
    """The baseline's margins ``[N, n_threats]`` for the threats that ship it (alone or averaged), NaN for the
    others: :meth:`gnn.source_choice.SourceChoice.calibrate` reads no other column, and a booster's pass over
    every account costs as much as the GNN's layers."""
    boosters = model.baseline.boosters if model.baseline is not None else {}
    out = np.full((len(rows), len(s.THREATS)), np.nan)
    for i, threat in enumerate(s.THREATS):
        if model.choice.get(threat) in BASELINE_SOURCES:
            out[:, i] = boosters[threat].predict(rows, raw_score=True)
    return out


def stage_feature_store(run_folder: Path, model: RiskModel, graph: RiskGraph, digests: np.ndarray) -> StagedStore:
    """Score ``graph`` with ``model`` and write the store's arrays from the same pass (one layer-wise inference,
    :meth:`gnn.model.RiskSAGE.inference` on the model's device, keeping the inner layers; the baseline's input
    rows computed once, for its margins and the store, and only when a threat ships the baseline).

    Args:
        run_folder: the scoring run's folder (its plan's).
        model: the model scoring the run.
        graph: the graph it scores.
        digests: :func:`incident_digests` of ``graph``'s accounts, in ``graph``'s account order.

    Returns:
        the staged store, with the pass's raw scores (publish it once the run's plan is saved).

    Raises:
        ValueError: ``digests`` does not have one entry per account, or node keys are not in byte order.
        graph.errors.ModelError: the model is not trained or does not fit ``graph``'s features.
    """
    if len(digests) != graph.num_accounts:
        raise ValueError(f"digests has {len(digests)} entries for {graph.num_accounts} accounts")
    model.check_compatible(graph)
    gnn, scaler = model.gnn, model.scaler
    if gnn is None or scaler is None:  # check_compatible raises first; for the type checker
        raise ValueError("model is not trained")
    started = time.perf_counter()
    tmp = run_folder / (STORE_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    labels = [n.label for n in s.DOMAIN_NODES]
    for t in labels:
        ids = _key_bytes(graph.ids[t])
        if len(ids) > 1 and not (ids[:-1] < ids[1:]).all():
            order = np.argsort(ids, kind="stable")
            raise ValueError(f"{t} keys are not in byte order (first out of place: {ids[order][0]!r})")
        np.save(tmp / f"ids.{t}.npy", ids)
        np.save(tmp / f"x.{t}.npy", graph.data[t].x.numpy().astype(np.float32, copy=False))
    num_layers = int(model.config.num_layers)
    data = standardised(graph, scaler).to(model.config.resolved_device())

    def keep(layer: int, h: dict[str, Any]) -> None:
        if 1 <= layer < num_layers:
            for t in labels:
                np.save(tmp / f"h{layer}.{t}.npy", h[t].cpu().numpy().astype(np.float32, copy=False))

    gnn.eval()
    logits = gnn.inference(data.x_dict, data.edge_index_dict, on_layer=keep)  # type: ignore[operator]
    raw = {"gnn": logits.cpu().numpy()}
    with_baseline = baseline_used(model)
    if with_baseline and model.baseline is not None:
        rows, _ = neighbourhood_features(graph, model.config.supernode_cap)
        raw["baseline"] = _shipped_margins(model, rows)
        np.save(tmp / f"baseline.{s.ACCOUNT.label}.npy", rows.astype(np.float32, copy=False))
        del rows
    raw[KNOWN_TIES] = known_fraud_ties(graph)
    np.save(tmp / f"known_ties.{s.ACCOUNT.label}.npy", raw[KNOWN_TIES])
    np.save(tmp / f"digest.{s.ACCOUNT.label}.npy", np.asarray(digests, dtype=np.uint64))
    meta = {
        "store_version": STORE_VERSION,
        "num_layers": num_layers,
        "hidden": int(model.config.hidden),
        "baseline": with_baseline,
        "edge_types": [list(e) for e in data.edge_types if data[e].edge_index.numel() > 0],
        "counts": {t: len(graph.ids[t]) for t in labels},
        "graph_hash": graph.content_hash,
        "write_seconds": round(time.perf_counter() - started, 3),
    }
    return StagedStore(run_folder=run_folder, raw=raw, meta=meta)


def write_feature_store(
    run_folder: Path,
    run_id: str,
    model: RiskModel,
    model_version: str,
    graph: RiskGraph,
    digests: np.ndarray,
) -> dict[str, Any]:
    """Write the store of ``graph`` scored by ``model`` under ``run_folder/features`` (atomically: a folder
    renamed into place), and return its ``store.json``: :func:`stage_feature_store` then
    :meth:`StagedStore.publish` (the scoring job calls the two itself, its plan saved between them).

    Args:
        run_folder: the scoring run's folder (its plan's).
        run_id: the run.
        model: the model that scored the run; model_version: its version.
        graph: the graph the run scored.
        digests: :func:`incident_digests` of ``graph``'s accounts, in ``graph``'s account order.

    Raises:
        ValueError: ``digests`` does not have one entry per account.
    """
    return stage_feature_store(run_folder, model, graph, digests).publish(run_id, model_version)
