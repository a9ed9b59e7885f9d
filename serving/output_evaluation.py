"""``ringwatch evaluate --truth``: the job's output *as written in Neo4j*, against the generator's truth file.

It reads back what investigators see — each account's written scores and label, the active rings — rather
than re-scoring, so it checks the write-back and ring grouping as well as the model. Accounts count when
they were not used in training: created at or after the scoring run's ``train_end`` (the model's split)
and present in the truth file.

Per threat: AUROC, AUPRC, Recall@K, precision/recall/FPR at the written labels' thresholds (issue B's
shape). Overall: the account false-positive rate of the written labels (flagged, but benign in truth) —
ring members flagged by ring grouping included. Rings: a planted ring is *recovered* when at least
:data:`RING_RECALL_SHARE` of its members are flagged and sit in one detected ring; ``recall`` is the share
recovered (all planted rings, then per kind, then the rings none of whose members carries a fraud label in
the graph — the rings only the graph can find). A detected ring is *pure* when most of its members come
from one planted ring.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd

from gnn.evaluation import evaluate_scores, save_report
from graph import schema as s
from graph.errors import InputContractError, RingwatchError
from graph.queries import scoring as q
from serving.rings import ring_membership
from serving.score import latest_completed_run

RING_RECALL_SHARE = 0.8
PAGE = 20_000


def read_scored_accounts(driver: neo4j.Driver, database: str) -> pd.DataFrame:
    """Every account's written scores and label (keyset pages)."""
    frames, after = [], ""
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
        while True:
            records = list(session.run(q.SCORED_ACCOUNTS_PAGE, after=after, batch=PAGE))
            if not records:
                break
            frames.append(pd.DataFrame([dict(r) for r in records]))
            after = records[-1]["account_id"]
    columns = ["account_id", "created_at", "label", *s.THREATS, "run_id", "known_label"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def ring_recall(
    truth: pd.DataFrame,
    flagged: set[str],
    rings: dict[str, list[str]],
    share: float = RING_RECALL_SHARE,
    labelled: set[str] | None = None,
) -> dict[str, Any]:
    """Planted rings recovered by the detected ``rings`` (see the module docstring).

    Args:
        labelled: accounts carrying a fraud label in the graph; with it, ``unlabelled_rings`` counts the planted
            rings none of whose members is labelled, and how many of them were recovered.
    """
    planted = truth[truth["ring_id"].fillna("") != ""].groupby("ring_id")
    ring_of: dict[str, str] = {a: rid for rid, members in rings.items() for a in members}
    recovered: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    unlabelled = {"planted": 0, "recovered": 0}
    for _, members in planted:
        kind = str(members["label"].iloc[0])
        kinds[kind] += 1
        in_ring = Counter(ring_of[a] for a in members["account_id"] if a in flagged and a in ring_of)
        found = bool(in_ring) and in_ring.most_common(1)[0][1] >= share * len(members)
        recovered[kind] += found
        if labelled is not None and not labelled.intersection(members["account_id"]):
            unlabelled["planted"] += 1
            unlabelled["recovered"] += found
    planted_of = dict(zip(truth["account_id"], truth["ring_id"].fillna("")))
    pure = sum(
        1
        for members in rings.values()
        if (c := Counter(planted_of.get(a, "") for a in members).most_common(1))
        and c[0][0]
        and c[0][1] > len(members) / 2
    )
    n_planted = int(sum(kinds.values()))
    return {
        "planted": n_planted,
        "detected": len(rings),
        "recovered": int(sum(recovered.values())),
        "recall": sum(recovered.values()) / n_planted if n_planted else float("nan"),
        "share_required": share,
        "by_kind": {k: {"planted": n, "recovered": recovered[k], "recall": recovered[k] / n} for k, n in kinds.items()},
        "pure_detected": pure,
        "purity": pure / len(rings) if rings else float("nan"),
        **(
            {
                "unlabelled_rings": {
                    **unlabelled,
                    "recall": unlabelled["recovered"] / unlabelled["planted"]
                    if unlabelled["planted"]
                    else float("nan"),
                }
            }
            if labelled is not None
            else {}
        ),
    }


def evaluate_output(
    driver: neo4j.Driver, database: str, truth: pd.DataFrame, out_dir: Path | None = None
) -> dict[str, Any]:
    """Metrics of the written output (see the module docstring); ``out_dir`` gets metrics.json and pictures.

    Raises:
        RingwatchError: no completed scoring run in the graph.
        InputContractError: the truth frame lacks a column.
    """
    missing = {"account_id", "label", "ring_id"} - set(truth.columns)
    if missing:
        raise InputContractError(f"truth file lacks column(s) {sorted(missing)}")
    run = latest_completed_run(driver, database)
    if run is None:
        raise RingwatchError(
            "no completed scoring run in the graph: run `ringwatch score` first "
            "(or pass --model to evaluate a model offline)"
        )
    accounts = read_scored_accounts(driver, database)
    truth = truth.astype({"account_id": str})
    merged = accounts.merge(
        truth[["account_id", "label"]].rename(columns={"label": "truth"}), on="account_id", how="inner"
    )
    scored = merged["label"].notna().to_numpy()
    train_end_ms = (run.get("train_end") or 0) * 1000
    unseen = (merged["created_at"].fillna(0).to_numpy() >= train_end_ms) & (merged["created_at"].notna().to_numpy())
    evaluated = scored & unseen
    scores = merged[list(s.THREATS)].to_numpy(dtype=np.float64, na_value=0.0)
    targets = np.stack([(merged["truth"] == t).to_numpy() for t in s.THREATS], axis=1).astype(np.float32)
    thresholds = {t: float(run[f"threshold_{t}"]) for t in s.THREATS}
    result = evaluate_scores(scores, thresholds, evaluated, targets, str(run["model_version"]))
    flagged = (merged["label"] != s.CLEAR).to_numpy() & scored
    benign = ~targets.any(axis=1).astype(bool)
    result["overall"]["account_fpr"] = float((flagged & benign & evaluated).sum() / max((benign & evaluated).sum(), 1))
    result["scope"] = "the job's output in Neo4j: accounts created after the training period, against the truth file"
    result["scoring_run"] = run["run_id"]
    result["unscored_accounts"] = int((~scored).sum())
    flagged_ids = set(merged.loc[flagged, "account_id"])
    labelled = set(accounts.loc[accounts["known_label"].isin(s.THREATS), "account_id"])
    result["rings"] = ring_recall(truth, flagged_ids, ring_membership(driver, database), labelled=labelled)
    if out_dir is not None:
        result["files"] = [str(f) for f in save_report(result, scores, targets, evaluated, out_dir)]
    return result
