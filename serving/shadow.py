"""Champion/challenger (A/B) in shadow: ``ringwatch score --challenger MODEL``.

The champion scores and decides as always (:mod:`serving.score`). The challenger scores the same graph, with
the same threshold policy, and its scores go to :data:`graph.schema.CHALLENGER_PROPERTIES` only — never to
``risk_*``, ``risk_label`` or rings, which stay the champion's. Its plan is saved beside the champion's
(``challenger.parquet`` in the run's folder) before anything is written, and written through the same ledger,
so a killed run resumes it too.

The **comparison** of one run (stored on the ``ScoringRun`` node as ``shadow_*`` properties, in MLflow as a
run of :data:`gnn.tracking.SHADOW_EXPERIMENT`, and as ``comparison.json`` in the run's folder):

- ``score_correlation`` (Pearson) and ``rank_correlation`` (Spearman) of the two models' highest score;
- ``champion_flagged``, ``challenger_flagged``, ``both_flagged`` and ``flagged_overlap`` (both / either);
- the **disagreement set**: accounts flagged by exactly one of the two (``challenger_disagrees`` on each
  account, so ``MATCH (a:Account {challenger_disagrees: true})`` lists them; their ids in
  ``disagreements.csv`` in the run's folder), its size ``disagreements``;
- **verdict precision on the disagreements**: for each model, among the disagreement accounts it flags and
  whose truth the graph knows (a verdict — ``confirmed`` fraud, ``false_positive`` benign — else a known
  label), the share that is fraud (``*_precision_on_disagreements``, with ``*_judged`` counts). Verdicts
  come after flags, so the figure grows more telling as investigators work; the monitor can recompute it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd

from gnn.estimator import RiskModel
from gnn.graph_data import RiskGraph
from gnn.thresholds import ThresholdPolicy
from graph import schema as s
from graph.queries import governance as q
from graph.queries.scoring import UPDATE_RUN
from graph.runs import Progress
from graph.writer import BatchWriter, columns, split

CHALLENGER_FILE = "challenger.parquet"
COMPARISON_FILE = "comparison.json"
DISAGREEMENTS_FILE = "disagreements.csv"
#: Prefix of the comparison's properties on the ``ScoringRun`` node (``shadow_score_correlation`` …).
RUN_PREFIX = "shadow_"


def challenger_plan(
    challenger: RiskModel, graph: RiskGraph, champion_plan: pd.DataFrame, policy: ThresholdPolicy | None
) -> pd.DataFrame:
    """The challenger's rows for the accounts of the champion's plan (same order).

    Returns:
        ``account_id``, one score per threat, ``score`` (the highest), ``label``, and ``disagrees`` (exactly one
        of the two models flags the account).
    """
    scores = challenger.decision_function(graph)
    labels, _, _ = challenger.decide(graph, scores, policy)
    idx = graph.account_index(champion_plan[s.ACCOUNT.key].astype(str))
    if (idx < 0).any():
        raise ValueError("the champion's plan names accounts that are not in the scored graph")
    frame = pd.DataFrame(scores[idx].astype(np.float64), columns=list(s.THREATS))
    frame.insert(0, s.ACCOUNT.key, champion_plan[s.ACCOUNT.key].to_numpy())
    frame["score"] = scores[idx].max(axis=1).astype(np.float64)
    frame["label"] = np.asarray(labels, dtype=object)[idx]
    champion_flags = (champion_plan["label"] != s.CLEAR).to_numpy()
    frame["disagrees"] = champion_flags != (frame["label"] != s.CLEAR).to_numpy()
    return frame


def save_challenger(folder: Path, frame: pd.DataFrame, model_version: str) -> None:
    """Write the challenger's plan into the run's folder (atomically; its model version in the file name's
    sibling ``challenger.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CHALLENGER_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / CHALLENGER_FILE)
    (folder / "challenger.json").write_text(json.dumps({"model_version": model_version}) + "\n", encoding="utf-8")


def load_challenger(folder: Path) -> tuple[pd.DataFrame, str] | None:
    """The challenger's plan saved in a run's folder, with its model version; None when the run has none."""
    if not (folder / CHALLENGER_FILE).is_file():
        return None
    version = json.loads((folder / "challenger.json").read_text(encoding="utf-8"))["model_version"]
    return pd.read_parquet(folder / CHALLENGER_FILE), str(version)


def erase_from_challenger(folder: Path, account_id: str) -> bool:
    """Blank ``account_id``'s row of the challenger's plan in ``folder`` and drop it from the disagreement set
    (an erased account, ``ringwatch erase``); the row stays, empty, so resumed batches keep their composition.

    Returns:
        True when the folder held the account.
    """
    found = False
    saved = load_challenger(folder)
    if saved is not None:
        frame, version = saved
        hit = (frame[s.ACCOUNT.key] == account_id).to_numpy()
        if hit.any():
            frame[s.ACCOUNT.key] = frame[s.ACCOUNT.key].astype(object).where(~hit, None)
            for column in (*s.THREATS, "score"):
                frame.loc[hit, column] = np.nan
            frame["label"] = frame["label"].astype(object).where(~hit, None)
            frame["disagrees"] = frame["disagrees"].where(~hit, False).astype(bool)
            save_challenger(folder, frame, version)
            found = True
    listed = folder / DISAGREEMENTS_FILE
    if listed.is_file():
        ids = pd.read_csv(listed, dtype=str, keep_default_na=False)
        if (ids[s.ACCOUNT.key] == account_id).any():
            ids[ids[s.ACCOUNT.key] != account_id].to_csv(listed, index=False)
            found = True
    return found


def write_challenger(
    driver: neo4j.Driver,
    database: str,
    run_id: str,
    model_version: str,
    frame: pd.DataFrame,
    batch_size: int,
    progress: Progress | None = None,
) -> int:
    """Write the challenger's rows (only ``challenger_*`` properties), each batch once. Returns batches written now.

    Raises:
        graph.errors.GraphWriteError: a batch failed; rerunning the scoring job resumes it.
    """
    writer = BatchWriter(driver, database, run_id, job="score-challenger", ledger=s.SCORE_BATCH)
    ranges = list(split(len(frame), batch_size))
    ids = [f"{run_id}/challenger/{i:07d}" for i in range(len(ranges))]
    done = writer.committed(ids)
    written = 0
    for (lo, hi), bid in zip(ranges, ids):
        if bid not in done:
            rows = frame.iloc[lo:hi]
            rows = rows[rows[s.ACCOUNT.key].notna()]
            writer.write(q.WRITE_CHALLENGER, columns(rows), bid, {"run_id": run_id, "model_version": model_version})
            written += 1
        if progress:
            progress("challenger write-back", hi, len(frame))
    return written


def _evidence(driver: neo4j.Driver, database: str, account_ids: list[str]) -> dict[str, bool]:
    """Account id → fraud (True) or benign (False), for the accounts whose truth the graph knows."""
    records, _, _ = driver.execute_query(
        q.ACCOUNT_EVIDENCE, account_ids=account_ids, database_=database, routing_=neo4j.RoutingControl.READ
    )
    out: dict[str, bool] = {}
    for r in records:
        if r["verdict"] in s.VERDICTS:
            out[r["account_id"]] = r["verdict"] == s.CONFIRMED
        elif r["known_label"] in s.KNOWN_LABELS:
            out[r["account_id"]] = r["known_label"] != s.BENIGN
    return out


def _correlation(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def compare(champion: pd.DataFrame, challenger: pd.DataFrame, evidence: dict[str, bool]) -> dict[str, Any]:
    """The comparison of one run (see the module docstring); ``evidence`` maps account ids to fraud/benign."""
    keep = champion[s.ACCOUNT.key].notna().to_numpy()
    champion, challenger = champion[keep], challenger[keep]
    a_flag = (champion["label"] != s.CLEAR).to_numpy()
    b_flag = (challenger["label"] != s.CLEAR).to_numpy()
    both, either = int((a_flag & b_flag).sum()), int((a_flag | b_flag).sum())
    ids = champion[s.ACCOUNT.key].astype(str).to_numpy()
    disagree = a_flag != b_flag
    out: dict[str, Any] = {
        "accounts": int(len(champion)),
        "score_correlation": _correlation(champion["score"], challenger["score"]),
        "rank_correlation": _correlation(champion["score"].rank(), challenger["score"].rank()),
        "champion_flagged": int(a_flag.sum()),
        "challenger_flagged": int(b_flag.sum()),
        "both_flagged": both,
        "flagged_overlap": both / either if either else math.nan,
        "disagreements": int(disagree.sum()),
        "label_disagreements": int((champion["label"].to_numpy() != challenger["label"].to_numpy()).sum()),
    }
    for name, flags in (("champion", a_flag), ("challenger", b_flag)):
        mine = ids[disagree & flags]
        judged = [evidence[i] for i in mine if i in evidence]
        out[f"{name}_judged"] = len(judged)
        out[f"{name}_precision_on_disagreements"] = sum(judged) / len(judged) if judged else math.nan
    return out


def record_comparison(
    driver: neo4j.Driver,
    database: str,
    run_id: str,
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    challenger_version: str,
    folder: Path,
) -> dict[str, Any]:
    """Compare, and store the comparison on the run node and in the run's folder (with the disagreement set).

    Returns:
        The comparison, with ``challenger_model_version`` and ``run_id``.
    """
    disagree = challenger["disagrees"].to_numpy(dtype=bool) & champion[s.ACCOUNT.key].notna().to_numpy()
    ids = champion.loc[disagree, s.ACCOUNT.key].astype(str).tolist()
    result = compare(champion, challenger, _evidence(driver, database, ids))
    result = {"run_id": run_id, "challenger_model_version": challenger_version, **result}
    props = {
        f"{RUN_PREFIX}{k}": (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in result.items()
        if k != "run_id"
    }
    driver.execute_query(UPDATE_RUN, run_id=run_id, props=props, database_=database)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPARISON_FILE).write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    pd.DataFrame(
        {
            s.ACCOUNT.key: ids,
            "champion_label": champion.loc[disagree, "label"].to_numpy(),
            "challenger_label": challenger.loc[disagree, "label"].to_numpy(),
        }
    ).to_csv(folder / DISAGREEMENTS_FILE, index=False)
    return result
