"""How many planted rings ring grouping can recover when the flags are right: the ceiling of ring recall.

Ring recall (``ringwatch evaluate --truth``) needs >= 80 % of a planted ring's members flagged *and* in one
detected ring. How the generator ties a ring's members together caps it whatever the model does. This script
measures that cap: it flags accounts from the truth file — every planted member, or all but a share ``miss``
of them, plus 1 % random benign accounts — and runs the same grouping as ``ringwatch rings``
(:func:`serving.rings.detect_rings` on :func:`serving.ring_links.candidates_from_graph`, the in-memory twin
of what the ring queries read).

    .venv/bin/python bench/ring_ceiling.py --accounts 20000 --seed 7

Prints one JSON object: recall and purity per ``miss``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn.build import build_risk_graph, tables_from_graph_rows
from graph import schema as s
from ingest.load import prepare
from ingest.privacy import Hasher
from ingest.synthetic import generate_exchange
from serving.output_evaluation import ring_recall
from serving.ring_grouping import GroupingPolicy
from serving.ring_links import candidates_from_graph
from serving.rings import detect_rings

THRESHOLD = 0.5


def flags_from_truth(
    truth: pd.DataFrame, ids: np.ndarray, miss: float, false_alarms: float, rng: np.random.Generator
) -> np.ndarray:
    """Label per account: planted members their threat (a share ``miss`` left clear), some benign flagged."""
    labels = np.full(len(ids), s.CLEAR, dtype=object)
    by_id = truth.set_index("account_id")["label"].reindex(ids).fillna("benign").to_numpy()
    planted = by_id != "benign"
    keep = planted & (rng.random(len(ids)) >= miss)
    labels[keep] = by_id[keep]
    alarm = ~planted & (rng.random(len(ids)) < false_alarms)
    labels[alarm] = s.COLLUSION
    return labels


def plan_of(ids: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Scoring rows that flag exactly ``labels`` (0.9 for a flagged account's threat, 0 elsewhere)."""
    plan = pd.DataFrame({s.ACCOUNT.key: ids})
    for t in s.THREATS:
        plan[t] = np.where(labels == t, 0.9, 0.0)
    plan["score"] = plan[list(s.THREATS)].max(axis=1)
    plan["label"] = labels
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--miss", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ring-ceiling-") as tmp:
        folder = Path(tmp) / "exchange"
        generate_exchange(args.accounts, args.seed, folder)
        truth = pd.read_csv(folder / "truth.csv", dtype=str, keep_default_na=False)
        tables = tables_from_graph_rows(prepare(folder, Hasher("bench-ring-ceiling-key-0123456789")).graph_rows)
    graph = build_risk_graph(tables.nodes, tables.rels)
    ids = graph.ids[s.ACCOUNT.label]
    result = {"accounts": args.accounts, "seed": args.seed, "runs": []}
    for miss in args.miss:
        labels = flags_from_truth(truth, ids, miss, 0.01, np.random.default_rng(0))
        flagged = labels != s.CLEAR
        plan = plan_of(ids, labels)
        candidates = candidates_from_graph(graph, plan, {t: THRESHOLD for t in s.THREATS}, GroupingPolicy())
        rings = detect_rings(candidates, previous={})
        flagged |= np.isin(ids, [a for r in rings for a in r.admitted])
        r = ring_recall(truth, set(ids[flagged]), {x.ring_id: x.members for x in rings})
        result["runs"].append(
            {
                "miss": miss,
                "recall": round(r["recall"], 3),
                "recovered": r["recovered"],
                "planted": r["planted"],
                "detected": r["detected"],
                "purity": round(r["purity"], 3),
                "by_kind": {k: round(v["recall"], 3) for k, v in r["by_kind"].items()},
            }
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
