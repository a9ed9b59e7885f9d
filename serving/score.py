"""``ringwatch score``: the batch scoring job — score every account, write scores, labels and reasons back.

One run:

1. loads the model (the registry's ``champion`` by default) and exports the graph from Neo4j;
2. scores every account (full-graph inference in this process: each layer over all nodes at once) and
   explains the flagged ones (:mod:`serving.reasons`);
3. saves the run's plan — scores, labels, reasons, the batch size and the run's timestamp — under
   ``<data dir>/scoring/<run id>/`` *before* writing anything, and records a ``(:ScoringRun)`` node with
   ``status: 'running'``;
4. writes the plan in fixed batches keyed by ``account_id``, each with its ``(:ScoreBatch)`` ledger node in
   the same transaction;
5. records the outcome (accounts written, flagged, label changes against the previous run) and
   ``status: 'completed'``.

A run killed at any point stays ``running`` in the graph (visible to anyone), and the next ``ringwatch score``
resumes it from its saved plan: the committed batches are skipped, the rest written, nothing redone or lost.
Rerunning a completed run's id changes nothing. The previous run's score and label stay on each account as
``prev_risk_*``, and every run's plan stays on disk, so changes can be audited.

``--since`` rescoring (the daily job) exports and scores the whole graph — features and messages need it —
but writes only the accounts touched by events at or after that time and their neighbourhood: accounts
within the model's receptive field (``num_layers`` hops through shared non-super-node identifiers,
transfers and referrals), whose scores can have changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd

from gnn.estimator import RiskModel
from gnn.graph_data import RiskGraph
from gnn.known_ties import account_links
from gnn.thresholds import ThresholdPolicy
from graph import schema as s
from graph.errors import RingwatchError
from graph.queries import scoring as q
from graph.runs import Progress, new_run_id
from graph.supernodes import EVIDENCE_CAP
from graph.writer import BatchWriter, columns, split
from serving.reasons import account_reasons

PLAN_FILE = "scores.parquet"
RUN_FILE = "run.json"
DEFAULT_BATCH_SIZE = 5_000


class ScoringError(RingwatchError):
    """A scoring run cannot start, resume or finish."""


@dataclass(frozen=True)
class ScoringRun:
    """What a run writes, fixed before its first batch (see the module docstring)."""

    run_id: str
    model_version: str
    scored_at_ms: int
    batch_size: int
    thresholds: dict[str, float]
    train_end: int | None
    content_hash: str
    since_ms: int | None
    accounts_in_graph: int
    policy: dict[str, Any] | None = None  # the ThresholdPolicy applied (None in plans saved before policies)

    def props(self) -> dict[str, Any]:
        """Properties of the ``ScoringRun`` node."""
        policy = ThresholdPolicy(**self.policy) if self.policy else None
        return {
            "model_version": self.model_version,
            "batch_size": self.batch_size,
            "graph_hash": self.content_hash,
            "since": self.since_ms,
            "accounts_in_graph": self.accounts_in_graph,
            "train_end": self.train_end,
            **{f"threshold_{t}": float(v) for t, v in self.thresholds.items()},
            "policy": policy.describe() if policy else None,
            "fpr_target": policy.fpr_target if policy else None,
            "budget": policy.budget if policy else None,
        }


def score_rows(
    graph: RiskGraph, scores: np.ndarray, labels: np.ndarray, only: np.ndarray | None = None
) -> pd.DataFrame:
    """The rows a run writes: ``account_id``, one score per threat, ``score`` (the highest), ``label``,
    ``reasons`` (a list for flagged accounts, None otherwise).

    Args:
        graph: the whole graph (reasons look at every neighbour).
        scores: calibrated scores ``[N_account, n_threats]``.
        labels: risk label per account (a threat or ``clear``).
        only: positions of the accounts to keep (``--since``); None keeps all.
    """
    if scores.shape != (graph.num_accounts, len(s.THREATS)) or len(labels) != graph.num_accounts:
        raise ValueError(f"scores {scores.shape} / labels {len(labels)} do not match {graph.num_accounts} accounts")
    frame = pd.DataFrame(scores.astype(np.float64), columns=list(s.THREATS))
    frame.insert(0, s.ACCOUNT.key, graph.ids[s.ACCOUNT.label])
    frame["score"] = scores.max(axis=1).astype(np.float64)
    frame["label"] = np.asarray(labels, dtype=object)
    positions = np.arange(len(frame)) if only is None else np.sort(np.asarray(only, dtype=np.int64))
    labels = frame["label"].to_numpy(dtype=object)
    flagged = positions[labels[positions] != s.CLEAR]
    reasons = account_reasons(graph, labels, flagged)
    frame["reasons"] = pd.Series([reasons.get(i) for i in range(len(frame))], dtype=object)
    return frame.iloc[positions].reset_index(drop=True)


def neighbourhood(graph: RiskGraph, seeds: np.ndarray, hops: int, supernode_cap: int = EVIDENCE_CAP) -> np.ndarray:
    """Positions of ``seeds`` and every account within ``hops`` hops of them.

    A hop goes through an identifier used by at most ``supernode_cap`` accounts, or along a transfer or a
    referral (either direction). Super-nodes are skipped: their messages are averaged over so many accounts
    that one account's new events barely move them.
    """
    n = graph.num_accounts
    links = account_links(graph, supernode_cap)
    reached = np.zeros(n, dtype=bool)
    reached[seeds] = True
    frontier = reached.copy()
    for _ in range(hops):
        nxt = (links @ frontier.astype(np.float32)) > 0
        frontier = nxt & ~reached
        reached |= nxt
        if not frontier.any():
            break
    return np.flatnonzero(reached)


def touched_since(driver: neo4j.Driver, database: str, since_ms: int) -> list[str]:
    """Account ids with events at or after ``since_ms`` (see :data:`graph.queries.scoring.TOUCHED_SINCE`)."""
    records, _, _ = driver.execute_query(
        q.TOUCHED_SINCE, since=since_ms, database_=database, routing_=neo4j.RoutingControl.READ
    )
    return [r["account_id"] for r in records]


def save_plan(folder: Path, run: ScoringRun, frame: pd.DataFrame) -> None:
    """Write the run's plan atomically (a half-written plan would resume wrongly)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (PLAN_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / PLAN_FILE)
    (folder / RUN_FILE).write_text(json.dumps(run.__dict__, indent=1) + "\n", encoding="utf-8")


def load_plan(folder: Path) -> tuple[ScoringRun, pd.DataFrame]:
    """Read a plan written by :func:`save_plan`.

    Raises:
        ScoringError: the folder holds no complete plan.
    """
    try:
        run = ScoringRun(**json.loads((folder / RUN_FILE).read_text(encoding="utf-8")))
        frame = pd.read_parquet(folder / PLAN_FILE)
    except (OSError, ValueError, TypeError) as e:
        raise ScoringError(f"{folder} holds no complete scoring plan ({e}); start a new run with --new-run") from e
    frame["reasons"] = frame["reasons"].map(lambda r: None if r is None else [str(x) for x in r])
    return run, frame


def erase_from_plan(folder: Path, account_id: str) -> bool:
    """Blank ``account_id``'s row of the plan in ``folder`` (an erased account, ``ringwatch erase``).

    The row stays, empty (no id, no scores, no reasons), so the plan's batches keep their composition and a
    run resumed from it skips the committed ones exactly as before; the write-back skips empty rows.

    Returns:
        True when the plan held the account (and was rewritten).
    """
    run, frame = load_plan(folder)
    hit = (frame[s.ACCOUNT.key] == account_id).to_numpy()
    if not hit.any():
        return False
    frame[s.ACCOUNT.key] = frame[s.ACCOUNT.key].astype(object).where(~hit, None)
    for threat in (*s.THREATS, "score"):
        frame.loc[hit, threat] = np.nan
    frame["reasons"] = frame["reasons"].astype(object).where(~hit, None)
    frame["label"] = frame["label"].astype(object).where(~hit, None)
    save_plan(folder, run, frame)
    return True


def batch_id(run_id: str, index: int) -> str:
    return f"{run_id}/{index:07d}"


def write_scores(
    driver: neo4j.Driver, database: str, run: ScoringRun, frame: pd.DataFrame, progress: Progress | None = None
) -> dict[str, int]:
    """Write a run's plan in batches (each once, whatever ran before); record start and outcome in the graph.

    Returns:
        ``{"batches": …, "written_now": …, "already_committed": …}``.

    Raises:
        graph.errors.GraphWriteError: a batch failed; the run stays ``running`` and a rerun resumes it.
    """
    writer = BatchWriter(driver, database, run.run_id, job="score", ledger=s.SCORE_BATCH)
    writer.ensure_constraints()
    started = time.perf_counter()
    driver.execute_query(
        q.START_RUN, run_id=run.run_id, props={**run.props(), "accounts": len(frame)}, database_=database
    )
    ranges = list(split(len(frame), run.batch_size))
    ids = [batch_id(run.run_id, i) for i in range(len(ranges))]
    done = writer.committed(ids)
    params = {
        "run_id": run.run_id,
        "model_version": run.model_version,
        "scored_at": run.scored_at_ms,
        "by_score": s.FLAGGED_BY_SCORE,
    }
    written = 0
    for _i, ((lo, hi), bid) in enumerate(zip(ranges, ids)):
        if bid not in done:
            rows = frame.iloc[lo:hi]
            rows = rows[rows[s.ACCOUNT.key].notna()]  # an account erased after planning keeps an empty row
            writer.write(q.WRITE_SCORES, columns(rows), bid, params)
            written += 1
        if progress:
            progress("write-back", hi, len(frame))
    records, _, _ = driver.execute_query(q.RUN_OUTCOME, run_id=run.run_id, clear=s.CLEAR, database_=database)
    outcome = dict(records[0])
    driver.execute_query(
        q.FINISH_RUN,
        run_id=run.run_id,
        status="completed",
        database_=database,
        props={**outcome, "batches": len(ranges), "write_seconds": time.perf_counter() - started},
    )
    return {"batches": len(ranges), "written_now": written, "already_committed": len(done), **outcome}


def unfinished_runs(driver: neo4j.Driver, database: str) -> list[dict[str, Any]]:
    """Runs recorded as ``running`` (killed, or still going), newest first."""
    records, _, _ = driver.execute_query(
        q.RUNS, status="running", limit=20, database_=database, routing_=neo4j.RoutingControl.READ
    )
    return [dict(r["run"]) for r in records]


def latest_completed_run(driver: neo4j.Driver, database: str) -> dict[str, Any] | None:
    records, _, _ = driver.execute_query(
        q.RUNS, status="completed", limit=1, database_=database, routing_=neo4j.RoutingControl.READ
    )
    return dict(records[0]["run"]) if records else None


def plan_run(
    model: RiskModel,
    graph: RiskGraph,
    model_version: str,
    *,
    run_id: str | None = None,
    since_ms: int | None = None,
    touched: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    policy: ThresholdPolicy | None = None,
    scores: np.ndarray | None = None,
) -> tuple[ScoringRun, pd.DataFrame]:
    """Score ``graph`` with ``model`` and fix what the run will write.

    Args:
        touched: accounts changed since ``since_ms``; their neighbourhood within the model's layers is written.
        policy: thresholds policy (``--fpr-target`` / ``--budget``); None keeps the model's thresholds.
        scores: scores already computed (Ray Data actors); None scores here.
    """
    scores = model.decision_function(graph) if scores is None else scores
    labels, thresholds, applied = model.decide(graph, scores, policy)
    split = model.split
    return plan_from_scores(
        graph,
        scores,
        labels,
        model_version,
        thresholds=thresholds,
        train_end=int(split.train_end) if split else None,
        run_id=run_id,
        since_ms=since_ms,
        touched=touched,
        hops=model.config.num_layers,
        batch_size=batch_size,
        policy=applied,
    )


def plan_from_scores(
    graph: RiskGraph,
    scores: np.ndarray,
    labels: np.ndarray,
    model_version: str,
    *,
    thresholds: dict[str, float],
    train_end: int | None,
    run_id: str | None = None,
    since_ms: int | None = None,
    touched: list[str] | None = None,
    hops: int = 2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    policy: ThresholdPolicy | None = None,
) -> tuple[ScoringRun, pd.DataFrame]:
    """A run's plan from scores already computed (any scorer: the GNN, a rule, a notebook's model)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    only = None
    if touched is not None:
        seeds = graph.account_index(touched)
        only = neighbourhood(graph, seeds[seeds >= 0], hops)
    frame = score_rows(graph, scores, labels, only)
    run = ScoringRun(
        run_id=run_id or new_run_id("score"),
        model_version=model_version,
        scored_at_ms=int(time.time() * 1000),
        batch_size=batch_size,
        thresholds={t: float(v) for t, v in thresholds.items()},
        train_end=train_end,
        content_hash=graph.content_hash,
        since_ms=since_ms,
        accounts_in_graph=graph.num_accounts,
        policy=policy.as_dict() if policy else None,
    )
    return run, frame
