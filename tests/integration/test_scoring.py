"""The scoring job's write-back, rings, query pack, investigator view and verdicts, against the real Neo4j.

One small exchange is ingested for the module; each test starts from its ingested state with no scores,
rings or verdicts (``clean``), and writes a scoring run planned from known rule-based scores
(:mod:`tests.scored_graph`), so every expected value is known.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import neo4j
import numpy as np
import pandas as pd
import pytest

from gnn.build import risk_graph_from_neo4j
from gnn.estimator import RiskModel
from gnn.graph_data import LABEL_CODES
from gnn.thresholds import DEFAULT_FPR_TARGET, ThresholdPolicy
from gnn.train import TrainConfig
from graph import schema as s
from graph.queries.investigator import PACK_BY_NAME, pack_file
from serving.feature_store import STORE_DIR, FeatureStore
from serving.output_evaluation import evaluate_output, ring_recall
from serving.ring_grouping import GroupingPolicy
from serving.rings import ring_membership, run_rings, run_thresholds
from serving.score import ScoringRun, load_plan, plan_from_scores, save_plan, write_scores
from serving.scoring_job import run_scoring
from serving.verdict import VerdictError, record_verdict
from tests.conftest import connect, wipe
from tests.scored_graph import THRESHOLD, ScoredExchange, scored_exchange

DB = "neo4j"
REPO = Path(__file__).resolve().parents[2]
RESET_JOB_STATE = (
    "MATCH (n) WHERE n:ScoringRun OR n:ScoreBatch OR n:Ring OR n:Verdict DETACH DELETE n\n"
    "WITH count(*) AS gone MATCH (a:Account)\n"
    "REMOVE a.risk_collusion, a.risk_promo_abuse, a.risk_bot_farm, a.risk_score, a.risk_label, a.risk_reasons,\n"
    "       a.risk_model_version, a.risk_run_id, a.risk_scored_at, a.prev_risk_score, a.prev_risk_label,\n"
    "       a.prev_risk_run_id, a.risk_flagged_by, a.risk_rings_run_id, a.verdict, a.verdict_threat, a.verdict_at,\n"
    "       a.verdict_note, a.verdict_by"
)


@pytest.fixture(scope="module")
def exchange(neo4j_server, tmp_path_factory) -> ScoredExchange:
    drv = connect(neo4j_server)
    try:
        wipe(drv)
        return scored_exchange(drv, tmp_path_factory.mktemp("scored"))
    finally:
        drv.close()


@pytest.fixture()
def clean(exchange: ScoredExchange, driver: neo4j.Driver) -> ScoredExchange:
    driver.execute_query(RESET_JOB_STATE, database_=DB)
    return exchange


def risk_state(driver: neo4j.Driver) -> pd.DataFrame:
    records, _, _ = driver.execute_query(
        "MATCH (a:Account) RETURN a.account_id AS account_id, a.risk_collusion AS collusion,\n"
        "a.risk_promo_abuse AS promo_abuse, a.risk_bot_farm AS bot_farm, a.risk_score AS score,\n"
        "a.risk_label AS label, a.risk_reasons AS reasons, a.risk_run_id AS run_id,\n"
        "a.risk_model_version AS model_version, a.prev_risk_label AS prev_label, a.prev_risk_run_id AS prev_run_id\n"
        "ORDER BY account_id",
        database_=DB,
    )
    return pd.DataFrame([dict(r) for r in records])


def run_node(driver: neo4j.Driver, run_id: str) -> dict:
    records, _, _ = driver.execute_query(
        "MATCH (r:ScoringRun {run_id: $id}) RETURN r {.*} AS r", id=run_id, database_=DB
    )
    return dict(records[0]["r"]) if records else {}


def assert_matches_plan(state: pd.DataFrame, plan: pd.DataFrame, run: ScoringRun) -> None:
    got = state.set_index("account_id").loc[plan["account_id"]]
    for column in (*s.THREATS, "score"):
        np.testing.assert_allclose(got[column].to_numpy(dtype=float), plan[column].to_numpy(dtype=float))
    assert list(got["label"]) == list(plan["label"])
    assert [list(r) if r is not None else None for r in got["reasons"]] == [
        list(r) if r is not None else None for r in plan["reasons"]
    ]
    assert set(got["run_id"]) == {run.run_id} and set(got["model_version"]) == {run.model_version}


def _rule_plan(
    clean: ScoredExchange,
    model_version: str,
    scores: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    **options,
) -> tuple[ScoringRun, pd.DataFrame]:
    """A scoring plan of the exchange's own scores (or ``scores``/``labels``) at the fixed rule threshold."""
    return plan_from_scores(
        clean.graph,
        clean.plan[list(s.THREATS)].to_numpy() if scores is None else scores,
        clean.plan["label"].to_numpy(dtype=object) if labels is None else labels,
        model_version,
        thresholds={t: THRESHOLD for t in s.THREATS},
        train_end=None,
        **options,
    )


def test_write_back_lands_every_account_once_and_a_rerun_changes_nothing(clean, driver):
    run, plan = clean.run, clean.plan
    outcome = write_scores(driver, DB, run, plan)
    batches = math.ceil(len(plan) / run.batch_size)
    assert outcome["batches"] == batches and outcome["written_now"] == batches
    assert outcome["written"] == len(plan) == clean.graph.num_accounts
    assert outcome["flagged"] == int((plan["label"] != s.CLEAR).sum())
    state = risk_state(driver)
    assert_matches_plan(state, plan, run)
    node = run_node(driver, run.run_id)
    assert node["status"] == "completed" and node["written"] == len(plan) and node["batches"] == batches
    assert node["model_version"] == "rule/1" and node["threshold_collusion"] == THRESHOLD
    assert node["finished_at"] >= node["started_at"]
    flagged = plan[plan["label"] != s.CLEAR]
    in_rings = flagged["account_id"].isin(clean.truth.loc[clean.truth["ring_id"] != "", "account_id"])
    # Most ring members share an identifier or money with another risky account (bot-farm members may be tied
    # only by network blocks and login schedules, which are ring evidence but not per-account reasons).
    assert flagged.loc[in_rings, "reasons"].map(len).gt(0).mean() > 0.8
    assert plan.loc[plan["label"] == s.CLEAR, "reasons"].isna().all()

    again = write_scores(driver, DB, run, plan)
    assert again["written_now"] == 0 and again["already_committed"] == batches
    pd.testing.assert_frame_equal(risk_state(driver), state)
    records, _, _ = driver.execute_query("MATCH (b:ScoreBatch) RETURN count(b) AS n", database_=DB)
    assert records[0]["n"] == batches


def test_the_job_scores_in_one_pass_and_publishes_the_store_of_its_run(clean, driver, settings, tmp_path):
    model_dir = RiskModel(TrainConfig(epochs=1)).fit(clean.graph).save(tmp_path / "model")
    summary = run_scoring(settings, driver, str(model_dir), new_run=True, monitor=False)
    folder = Path(summary.plan)
    store = FeatureStore.load(folder / STORE_DIR)  # published, for this run, once its plan was saved
    assert store.run_id == summary.run_id and not (folder / (STORE_DIR + ".tmp")).exists()
    assert {"inference_and_store", "labels_and_reasons", "save_plan_and_store", "write"} <= set(summary.seconds)
    # The scores the store's pass gave are the model's scores of the graph, as scoring without a store gives them.
    _, frame = load_plan(folder)
    graph = risk_graph_from_neo4j(driver, DB)
    expected = RiskModel.load(model_dir).decision_function(graph)[graph.account_index(frame[s.ACCOUNT.key])]
    np.testing.assert_allclose(frame[list(s.THREATS)].to_numpy(dtype=float), expected, rtol=0, atol=1e-7)
    assert np.array_equal(store.find(s.ACCOUNT.label, graph.ids[s.ACCOUNT.label]), np.arange(graph.num_accounts))


KILLABLE_WRITER = """
import sys, time
from pathlib import Path
from graph.driver import open_driver
from graph.writer import BatchWriter
from serving.score import load_plan, write_scores
original = BatchWriter.write
def slow(self, *args, **kwargs):
    time.sleep(0.15)
    return original(self, *args, **kwargs)
BatchWriter.write = slow
run, frame = load_plan(Path(sys.argv[1]))
with open_driver(sys.argv[2], sys.argv[3], sys.argv[4]) as driver:
    write_scores(driver, "neo4j", run, frame)
"""


def test_a_killed_run_stays_visible_and_resumes_without_redoing_or_losing_any(clean, driver, neo4j_server, tmp_path):
    run, plan = _rule_plan(clean, "rule/1", batch_size=50)
    save_plan(tmp_path / run.run_id, run, plan)
    batches = math.ceil(len(plan) / 50)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLABLE_WRITER,
            str(tmp_path / run.run_id),
            neo4j_server.uri,
            neo4j_server.username,
            neo4j_server.password(),
        ],
        cwd=REPO,
    )
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and child.poll() is None:
        records, _, _ = driver.execute_query("MATCH (b:ScoreBatch) RETURN count(b) AS n", database_=DB)
        committed = records[0]["n"]
        if committed >= 5:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    assert run_node(driver, run.run_id)["status"] == "running"  # a half-finished run is visible
    records, _, _ = driver.execute_query("MATCH (b:ScoreBatch) RETURN count(b) AS n", database_=DB)
    done_before = records[0]["n"]
    assert 5 <= done_before < batches

    outcome = write_scores(driver, DB, run, plan)
    assert outcome["already_committed"] == done_before
    assert outcome["written_now"] == batches - done_before
    assert_matches_plan(risk_state(driver), plan, run)
    assert run_node(driver, run.run_id)["status"] == "completed"
    records, _, _ = driver.execute_query(
        "MATCH (b:ScoreBatch) RETURN count(b) AS n, count(DISTINCT b.batch_id) AS d", database_=DB
    )
    assert records[0]["n"] == records[0]["d"] == batches


def test_a_new_run_keeps_the_previous_scores_and_counts_label_changes(clean, driver):
    write_scores(driver, DB, clean.run, clean.plan)
    scores = clean.plan[list(s.THREATS)].to_numpy().copy()
    labels = clean.plan["label"].to_numpy(dtype=object).copy()
    flipped = np.flatnonzero(labels != s.CLEAR)[:7]
    scores[flipped] = 0.01
    labels[flipped] = s.CLEAR
    run2, plan2 = _rule_plan(clean, "rule/2", scores, labels, batch_size=500)
    outcome = write_scores(driver, DB, run2, plan2)
    assert outcome["label_changes"] == 7
    state = risk_state(driver).set_index("account_id")
    assert (state["prev_run_id"] == clean.run.run_id).all()
    ids = clean.plan["account_id"].to_numpy()[flipped]
    assert (state.loc[ids, "label"] == s.CLEAR).all()
    assert list(state.loc[ids, "prev_label"]) == list(clean.plan.set_index("account_id").loc[ids, "label"])
    # Replaying the second run's batches (say, after a ledger was lost) still keeps the first run as previous.
    driver.execute_query("MATCH (b:ScoreBatch) WHERE b.run_id = $r DETACH DELETE b", r=run2.run_id, database_=DB)
    write_scores(driver, DB, run2, plan2)
    assert (risk_state(driver)["prev_run_id"] == clean.run.run_id).all()


def test_since_rescoring_writes_only_the_touched_accounts_and_their_neighbourhood(clean, driver):
    from serving.score import touched_since

    records, _, _ = driver.execute_query("MATCH (a:Account) RETURN max(a.created_at).epochMillis AS t", database_=DB)
    since = records[0]["t"] - 2 * 86_400_000
    touched = touched_since(driver, DB, since)
    assert 0 < len(touched) < clean.graph.num_accounts
    records, _, _ = driver.execute_query(
        "MATCH (a:Account) WHERE a.created_at >= datetime({epochMillis: $t}) RETURN collect(a.account_id) AS ids",
        t=since,
        database_=DB,
    )
    assert set(records[0]["ids"]) <= set(touched)
    run, plan = _rule_plan(clean, "rule/1", since_ms=since, touched=touched)
    assert set(touched) <= set(plan["account_id"]) and len(plan) < clean.graph.num_accounts
    write_scores(driver, DB, run, plan)
    state = risk_state(driver)
    assert set(state.loc[state["run_id"].notna(), "account_id"]) == set(plan["account_id"])
    assert run_node(driver, run.run_id)["since"] == since


def test_rings_keep_their_ids_across_runs_and_retire_what_is_gone(clean, driver, tmp_path):
    # Grouping without expansion: a member whose scores drop to nothing would otherwise rejoin through its ties
    # to two members (by design; tests/unit/test_rings.py), and this test is about ids across membership changes.
    policy = GroupingPolicy(expand_ties=0)
    write_scores(driver, DB, clean.run, clean.plan)
    first = run_rings(driver, DB, policy)
    assert first["rings"] > 0 and first["kept_ids"] == 0
    members_before = ring_membership(driver, DB)
    assert sum(map(len, members_before.values())) == first["ring_members"]

    second = run_rings(driver, DB, policy)  # same flags: same rings, same ids
    assert second["kept_ids"] == second["rings"] == first["rings"] and second["retired"] == 0
    assert ring_membership(driver, DB) == members_before

    # One member of the largest ring is cleared by a newer run (its scores drop to nothing): the ring keeps its
    # id without that member.
    ring_id, members = max(members_before.items(), key=lambda kv: len(kv[1]))
    cleared = sorted(members)[0]
    at = clean.plan["account_id"].to_numpy() == cleared
    labels = clean.plan["label"].to_numpy(dtype=object).copy()
    labels[at] = s.CLEAR
    scores = clean.plan[list(s.THREATS)].to_numpy().copy()
    scores[at] = 0.0
    run2, plan2 = _rule_plan(clean, "rule/2", scores, labels, batch_size=500)
    write_scores(driver, DB, run2, plan2)
    run_rings(driver, DB, policy)
    after = ring_membership(driver, DB)
    assert ring_id in after and cleared not in after[ring_id]
    assert set(after[ring_id]) <= set(members) and len(after[ring_id]) >= 0.9 * len(members) - 1
    records, _, _ = driver.execute_query("MATCH (r:Ring) RETURN r.status AS status, count(*) AS n", database_=DB)
    assert sum(r["n"] for r in records if r["status"] == "active") == len(after)


def test_rings_take_their_false_positive_budget_from_the_scoring_runs_target(clean, driver):
    # The run records its policy's target account FPR on the ScoringRun node; `ringwatch rings` reads it back
    # as the budget's target (what the per-account thresholds leave of it goes to the rings).
    run, plan = _rule_plan(clean, "rule/target", policy=ThresholdPolicy(kind="fpr", fpr_target=0.004))
    write_scores(driver, DB, run, plan)
    run_id, thresholds, _, target = run_thresholds(driver, DB)
    assert run_id == run.run_id and thresholds == {t: THRESHOLD for t in s.THREATS} and target == 0.004
    run, plan = _rule_plan(clean, "rule/budget", policy=ThresholdPolicy(kind="budget", fpr_target=None, budget=50))
    write_scores(driver, DB, run, plan)
    assert run_thresholds(driver, DB)[3] is None
    assert GroupingPolicy().account_fpr_target(run_thresholds(driver, DB)[3]) == DEFAULT_FPR_TARGET


def test_evaluation_reads_the_written_output(clean, driver, tmp_path):
    write_scores(driver, DB, clean.run, clean.plan)
    run_rings(driver, DB)
    evaluation = evaluate_output(driver, DB, clean.truth, tmp_path / "eval")
    written = risk_state(driver)[["account_id", "label"]]  # the plan's labels, and ring members rings flagged
    plan = written.merge(clean.truth, on="account_id", suffixes=("", "_truth"))
    flagged = plan["label"] != s.CLEAR
    assert flagged.sum() > (clean.plan["label"] != s.CLEAR).sum()
    benign = plan["label_truth"] == "benign"
    assert evaluation["overall"]["account_fpr"] == pytest.approx((flagged & benign).sum() / benign.sum())
    assert evaluation["evaluated_accounts"] == len(plan)  # train_end None: nothing was used in training
    for _i, threat in enumerate(s.THREATS):
        m = evaluation["threats"][threat]
        assert m["positives"] == int((plan["label_truth"] == threat).sum())
    labelled = set(clean.graph.ids[s.ACCOUNT.label][clean.graph.labels > 0])
    expected = ring_recall(
        clean.truth, set(plan.loc[flagged, "account_id"]), ring_membership(driver, DB), labelled=labelled
    )
    unlabelled = (
        clean.truth[clean.truth["ring_id"] != ""]
        .groupby("ring_id")["account_id"]
        .agg(lambda members: not labelled.intersection(members))
        .sum()
    )
    got = {**evaluation["rings"], "unlabelled_rings": evaluation["rings"]["unlabelled_rings"]["planted"]}
    assert got == {**expected, "unlabelled_rings": unlabelled} and evaluation["rings"]["planted"] == 6
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert (
        saved["rings"]["recall"] == expected["recall"] and (tmp_path / "eval" / "pr_curves.png").stat().st_size > 1000
    )


def test_query_pack_answers_what_it_claims(clean, driver):
    write_scores(driver, DB, clean.run, clean.plan)
    rings = run_rings(driver, DB)
    members = ring_membership(driver, DB)
    plan = clean.plan.set_index("account_id")
    labels = tuple(spec.label for spec in s.IDENTIFIER_NODES)
    top_ring = next(
        r
        for r in rings["top"]
        if any(str(x).startswith(labels) for a in members[r["ring_id"]] for x in plan.loc[a, "reasons"])
    )
    account = next(
        a
        for a in sorted(members[top_ring["ring_id"]])
        if any(str(x).startswith(labels) for x in plan.loc[a, "reasons"])
    )

    def run(name: str, **params):
        records, _, _ = driver.execute_query(PACK_BY_NAME[name].cypher, params, database_=DB)
        return [dict(r) for r in records]

    why = run("why_flagged", account_id=account)[0]
    assert why["label"] == plan.loc[account, "label"] and why["ring_id"] == top_ring["ring_id"]
    assert list(why["reasons"]) == list(plan.loc[account, "reasons"])
    assert why["shared"] and all(x["risky_peers"] and x["users"] <= 100 for x in why["shared"])
    live = {x["identifier"] for x in why["shared"]}
    stored = {" ".join(r.split(" ")[:2]) for r in why["reasons"] if r.startswith(labels)}
    assert stored and stored <= live  # every identifier reason is there to see in the graph
    assert run("why_flagged", account_id="no-such-account") == []

    ring_rows = run("ring_of_account", account_id=account)
    assert {r["member"] for r in ring_rows} == set(members[top_ring["ring_id"]])
    assert [r["score"] for r in ring_rows] == sorted((r["score"] for r in ring_rows), reverse=True)

    top = run("top_rings", limit=5)
    assert len(top) == min(5, rings["rings"]) and top[0]["ring_id"] == rings["top"][0]["ring_id"]
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)
    assert len(run("new_rings_since", since="2000-01-01")) == rings["rings"]
    assert run("new_rings_since", since="2999-01-01") == []

    shared = run("shared_payment_ids", account_id=account)
    assert shared and all(r["account_id"] != account for r in shared)
    records, _, _ = driver.execute_query(
        "MATCH (x:Account {account_id: $a})-[:USED_CARD|USED_DEVICE|WITHDREW_TO]->()<-[:USED_CARD|USED_DEVICE|"
        "WITHDREW_TO]-(b:Account) WHERE b <> x RETURN collect(DISTINCT b.account_id) AS ids",
        a=account,
        database_=DB,
    )
    assert {r["account_id"] for r in shared} == set(records[0]["ids"])

    assert run("false_positives") == []
    record_verdict(driver, DB, account, s.FALSE_POSITIVE, note="sibling's phone", by="tester")
    fps = run("false_positives")
    assert [(r["account_id"], r["note"], r["by"], r["still_current"]) for r in fps] == [
        (account, "sibling's phone", "tester", True)
    ]
    runs = run("scoring_runs")
    assert runs[0]["run_id"] == clean.run.run_id and runs[0]["status"] == "completed"
    assert runs[0]["rings"] == rings["rings"]


def test_pack_file_in_the_repo_is_the_generated_one():
    checked_in = (REPO / "graph" / "queries" / "investigator_pack.cypher").read_text(encoding="utf-8")
    assert checked_in == pack_file(), "regenerate it: ringwatch query-pack > graph/queries/investigator_pack.cypher"
    for query in PACK_BY_NAME.values():
        assert query.cypher in checked_in


def test_verdicts_reach_the_next_training_set(clean, driver):
    write_scores(driver, DB, clean.run, clean.plan)
    graph = clean.graph
    known = np.flatnonzero(graph.labels == LABEL_CODES[s.COLLUSION])[0]
    unlabelled_flagged = next(i for i in np.flatnonzero(graph.labels < 0) if clean.plan["label"].iloc[i] in s.THREATS)
    known_id, flagged_id = graph.ids["Account"][known], graph.ids["Account"][unlabelled_flagged]
    record_verdict(driver, DB, known_id, s.FALSE_POSITIVE, note="checked")
    confirmed = record_verdict(driver, DB, flagged_id, s.CONFIRMED)
    assert confirmed["threat"] == clean.plan["label"].iloc[unlabelled_flagged]
    with pytest.raises(VerdictError, match="no account"):
        record_verdict(driver, DB, "no-such-account", s.CONFIRMED)
    with pytest.raises(VerdictError, match="verdict must be"):
        record_verdict(driver, DB, known_id, "maybe")

    retrained_on = risk_graph_from_neo4j(driver, DB)
    assert retrained_on.labels[known] == LABEL_CODES[s.BENIGN]
    assert retrained_on.labels[unlabelled_flagged] == LABEL_CODES[confirmed["threat"]]
    changed = np.flatnonzero(retrained_on.labels != graph.labels)
    assert sorted(changed) == sorted([known, unlabelled_flagged])
    assert retrained_on.content_hash != graph.content_hash  # a new snapshot, so a new training run sees it
    for label in retrained_on.feature_names:  # verdicts are labels, never features
        np.testing.assert_array_equal(retrained_on.data[label].x.numpy(), graph.data[label].x.numpy())


def test_investigate_and_verdict_commands(clean, driver, graph_env):
    write_scores(driver, DB, clean.run, clean.plan)
    run_rings(driver, DB)
    members = ring_membership(driver, DB)
    ring_id, ids = next(iter(sorted(members.items())))
    own = clean.plan.set_index("account_id")["label"]
    account = sorted(a for a in ids if own[a] != s.CLEAR)[0]  # flagged on its own score: its label is shown
    env = {**os.environ, **graph_env, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "serving"]
    done = subprocess.run(
        [*cli, "investigate", account], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (
        account in done.stdout
        and ring_id in done.stdout
        and clean.plan.set_index("account_id").loc[account, "label"] in done.stdout
    )
    for other in ids:
        assert other in done.stdout  # every ring member is listed
    done = subprocess.run(
        [*cli, "investigate", "nobody"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "no account 'nobody'" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [*cli, "verdict", account, "confirmed", "--note", "same device as ring"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    records, _, _ = driver.execute_query(
        "MATCH (v:Verdict)-[:ABOUT]->(a:Account {account_id: $a}) "
        "RETURN v.verdict AS v, v.note AS note, a.verdict AS current",
        a=account,
        database_=DB,
    )
    assert [dict(r) for r in records] == [{"v": "confirmed", "note": "same device as ring", "current": "confirmed"}]
    done = subprocess.run(
        [*cli, "verdict", account, "perhaps"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "verdict must be one of" in done.stderr
