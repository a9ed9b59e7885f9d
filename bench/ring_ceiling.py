"""How many planted rings ring grouping can recover when the flags are right: the ceiling of ring recall.

Ring recall (``ringwatch evaluate --truth``) needs >= 80 % of a planted ring's members flagged *and* in one
detected ring. How loosely the generator ties a ring's members together (weak members take part in one
mechanism only, shared identifiers are drawn per member) caps it whatever the model does. This script
measures that cap: it flags accounts from the truth file — every planted member, or all but a share
``miss`` of them, plus 1 % random benign accounts — and runs the same grouping code as ``ringwatch rings``
(:func:`serving.rings.detect_rings`) on links computed in memory, as the ring queries would return them.

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
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn.build import build_risk_graph, tables_from_graph_rows  # noqa: E402
from graph import schema as s  # noqa: E402
from graph.queries.rings import IP_BLOCK, LINK_RELS, MONEY_RELS  # noqa: E402
from ingest.load import prepare  # noqa: E402
from ingest.privacy import Hasher  # noqa: E402
from ingest.synthetic import generate_exchange  # noqa: E402
from serving.output_evaluation import ring_recall  # noqa: E402
from serving.reasons import SUPERNODE_CAP, incidence  # noqa: E402
from serving.rings import SharedIdentifier, detect_rings  # noqa: E402


def flags_from_truth(truth: pd.DataFrame, ids: np.ndarray, miss: float, false_alarms: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Label per account: planted members their threat (a share ``miss`` left clear), some benign flagged."""
    labels = np.full(len(ids), s.CLEAR, dtype=object)
    by_id = truth.set_index("account_id")["label"].reindex(ids).fillna("benign").to_numpy()
    planted = by_id != "benign"
    keep = planted & (rng.random(len(ids)) >= miss)
    labels[keep] = by_id[keep]
    alarm = ~planted & (rng.random(len(ids)) < false_alarms)
    labels[alarm] = s.COLLUSION
    return labels


def links(graph, ip_prefix: pd.Series, flagged: np.ndarray, cap: int) -> tuple[list[SharedIdentifier], pd.DataFrame]:
    """What :func:`serving.rings.read_flagged` reads from Neo4j, computed from the in-memory graph."""
    ids = graph.ids[s.ACCOUNT.label]
    matrices = [(rel.target.label, incidence(graph, rel).tocsc()) for rel in LINK_RELS]
    codes = pd.factorize(ip_prefix)[0]
    to_block = sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)))
    blocks = (incidence(graph, s.USED_IP) @ to_block).tocsc()
    blocks.data[:] = 1
    matrices.append((IP_BLOCK, blocks))
    shared = []
    for label, inc in matrices:
        users = np.asarray(inc.sum(axis=0)).ravel()
        sub = inc[flagged]
        count = np.asarray(sub.sum(axis=0)).ravel()
        for n in np.flatnonzero((count >= 2) & (users <= cap)):
            members = tuple(ids[flagged][sub[:, n].nonzero()[0]])
            shared.append(SharedIdentifier(label, str(n), members, int(users[n])))
    money = []
    for rel in MONEY_RELS:
        ei = graph.data[rel.edge_type].edge_index.numpy()
        keep = flagged[ei[0]] & flagged[ei[1]]
        money.append(pd.DataFrame({"src": ids[ei[0][keep]], "dst": ids[ei[1][keep]], "type": rel.type, "count": 1}))
    return shared, pd.concat(money, ignore_index=True)


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
    ip_prefix = tables.nodes[s.IP.label].set_index(s.IP.key)["prefix"].reindex(graph.ids[s.IP.label])
    result = {"accounts": args.accounts, "seed": args.seed, "supernode_cap": SUPERNODE_CAP, "runs": []}
    for miss in args.miss:
        labels = flags_from_truth(truth, ids, miss, 0.01, np.random.default_rng(0))
        flagged = labels != s.CLEAR
        shared, money = links(graph, ip_prefix, flagged, SUPERNODE_CAP)
        accounts = pd.DataFrame({"account_id": ids[flagged], "label": labels[flagged], "score": 0.9,
                                 "known_label": None, "verdict": None, "first_seen": 0, "last_seen": 0})
        rings = detect_rings(accounts, shared, money, previous={})
        r = ring_recall(truth, set(ids[flagged]), {x.ring_id: x.members for x in rings})
        result["runs"].append({"miss": miss, "recall": round(r["recall"], 3), "recovered": r["recovered"],
                               "planted": r["planted"], "detected": r["detected"], "purity": round(r["purity"], 3),
                               "by_kind": {k: round(v["recall"], 3) for k, v in r["by_kind"].items()}})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
