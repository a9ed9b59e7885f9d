"""What the API serves and how it falls back: the champion (swapped whole on reload), the degraded-mode cache.

:class:`ApiState` holds one :class:`Served` — scorer, score bands and the fallback cache — and replaces it in
a single assignment on reload, so a request that started with the old champion finishes with it and the next
one gets the new one: nothing is dropped or mixed.

When Neo4j fails (a timeout, a refused connection), the answer comes from :class:`FallbackCache`, the plans
the batch job saved on disk (:func:`serving.score.load_plan`), marked ``degraded`` with the score's age. Live
scoring is retried after :data:`RETRY_LIVE_S` (a circuit breaker: a down server costs one timeout, not one per
request); ``/readyz`` pings the server and closes the breaker when it answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import pandas as pd
from neo4j.exceptions import DriverError, Neo4jError

from gnn.estimator import RiskModel
from gnn.tracking import load_model
from graph import schema as s
from graph.errors import RingwatchError
from graph.logs import logger
from graph.queries.receptive_field import PING
from graph.settings import Settings
from ingest.job import hasher_from
from serving.api.events import EventWriter
from serving.api.scorer import AccountScore, OnlineScorer, ScoredField, load_population
from serving.api.settings import ApiSettings
from serving.feature_store import latest_store
from serving.score import ScoringError, ScoringRun, load_plan
from serving.scoring_job import scoring_dir

log = logger(__name__)

#: After a failed Neo4j call, requests answer from the cache for this long before trying live again.
RETRY_LIVE_S = 2.0
#: Time beyond the Neo4j timeout before a call is abandoned (the server's own timeout normally fires first).
DEADLINE_SLACK_S = 0.5
#: Errors that mean "Neo4j is slow or gone": the request falls back to the cache.
NEO4J_DOWN = (Neo4jError, DriverError, OSError, TimeoutError)


class Neo4jUnavailableError(RingwatchError):
    """Neo4j did not answer in time, and the request cannot be answered without it."""


@dataclass(frozen=True)
class CachedScore:
    """An account's row of the last batch plans."""

    account: AccountScore
    scored_at_ms: int
    model_version: str


class FallbackCache:
    """The newest full scoring plan on disk, with any newer ``--since`` plans laid over it, by account id."""

    def __init__(self, rows: pd.DataFrame, runs: list[ScoringRun]) -> None:
        self.rows, self.runs = rows, runs

    @property
    def scored_at_ms(self) -> int | None:
        return max((r.scored_at_ms for r in self.runs), default=None)

    @classmethod
    def load(cls, folder: Path) -> FallbackCache | None:
        """Read the plans under ``folder`` (a scoring directory); None when it holds none."""
        plans: list[tuple[ScoringRun, pd.DataFrame]] = []
        for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
            try:
                plans.append(load_plan(sub))
            except ScoringError:
                continue  # a run killed before its plan was saved
        plans.sort(key=lambda p: p[0].scored_at_ms)
        full = [i for i, (run, _) in enumerate(plans) if run.since_ms is None]
        if not full:
            return None
        used = plans[full[-1] :]
        frames = [frame.assign(_run=i) for i, (_, frame) in enumerate(used)]
        rows = pd.concat(frames, ignore_index=True)
        rows = rows[rows[s.ACCOUNT.key].notna()].drop_duplicates(s.ACCOUNT.key, keep="last")
        return cls(rows.set_index(s.ACCOUNT.key), [run for run, _ in used])

    def reasons_of(self, run_id: str) -> pd.Series:
        """Account id → reasons, for the accounts whose cached row is run ``run_id``'s."""
        runs = [i for i, run in enumerate(self.runs) if run.run_id == run_id]
        return self.rows["reasons"][self.rows["_run"].isin(runs)]

    def get(self, account_id: str) -> CachedScore | None:
        if account_id not in self.rows.index:
            return None
        row = self.rows.loc[account_id]
        run = self.runs[int(row["_run"])]
        scores = {t: float(row[t]) for t in s.THREATS}
        account = AccountScore(account_id, scores, float(row["score"]), str(row["label"]), list(row["reasons"] or []))
        return CachedScore(account, run.scored_at_ms, run.model_version)


@dataclass(frozen=True)
class Served:
    """Everything a request uses, replaced as one on reload."""

    scorer: OnlineScorer | None
    version: str | None
    thresholds: dict[str, float]
    bands: dict[str, tuple[float, float]]
    cache: FallbackCache | None
    loaded_at: float


def decide(scores: dict[str, float], bands: dict[str, tuple[float, float]]) -> str:
    """``block`` when a threat's score reaches its block band, else ``review`` when one reaches its review band,
    else ``allow``."""
    if any(scores[t] >= bands[t][1] for t in bands):
        return "block"
    if any(scores[t] >= bands[t][0] for t in bands):
        return "review"
    return "allow"


class ApiState:
    """The API's state: settings, the driver, what is served, whether Neo4j is answering.

    Args:
        settings: the project's settings (data folder, registry, database).
        api: the API's settings.
        driver: an open driver (the state does not close it).
        model_loader: returns ``(model, version)``; default the registry's model named by ``api.model``.
    """

    def __init__(
        self,
        settings: Settings,
        api: ApiSettings,
        driver: neo4j.Driver,
        model_loader: Callable[[], tuple[RiskModel, str]] | None = None,
    ) -> None:
        self.settings, self.api, self.driver = settings, api, driver
        self.database = settings.neo4j_database
        self.model_loader = model_loader or self._registry_model
        self.served: Served | None = None
        self._live_after = 0.0
        self._was_down = False
        # Neo4j calls run here, so each can be abandoned at its deadline (a stuck one keeps its thread).
        self._calls = ThreadPoolExecutor(max_workers=api.max_in_flight + 2, thread_name_prefix="ringwatch-neo4j")
        self._reload_lock = threading.Lock()
        self.last_error: str | None = None
        self.events = EventWriter(driver, self.database, hasher_from(settings), api.neo4j_timeout_s)

    # -- loading -----------------------------------------------------------------------------------

    def _registry_model(self) -> tuple[RiskModel, str]:
        model, version, _ = load_model(self.settings, self.api.model)
        return model, version

    def load(self) -> Served:
        """Load the model, the graph's tallies and the fallback cache, and serve them (also the reload).

        Without Neo4j the model is still loaded and the cache serves (degraded) until a reload.

        Raises:
            ModelError / TrackingError: the model cannot be loaded (the previous one stays served).
        """
        with self._reload_lock:
            model, version = self.model_loader()
            cache = FallbackCache.load(scoring_dir(self.settings))
            thresholds = dict(model.thresholds)
            if cache is not None and cache.runs[-1].model_version == version:
                thresholds = dict(cache.runs[-1].thresholds)  # the policy the batch job applied to this model
            scorer = None
            try:
                context = load_population(self.driver, self.database)
                labels = cache.rows["label"] if cache is not None else None
                store = latest_store(scoring_dir(self.settings), version)
                scorer = OnlineScorer(
                    model,
                    version,
                    context,
                    thresholds,
                    labels,
                    self.api.expand_cap,
                    store=store,
                    batch_reasons=cache.reasons_of(store.run_id) if cache is not None and store else None,
                )
                log.info(
                    "serving %s with %s",
                    version,
                    f"the feature store of run {store.run_id}" if store else "no feature store (whole fields)",
                )
                with self.driver.session(database=self.database, default_access_mode=neo4j.READ_ACCESS) as session:
                    session.execute_read(scorer.warm_up)
            except NEO4J_DOWN as e:
                self.mark_down(e)
            served = Served(scorer, version, thresholds, self.api.bands(thresholds), cache, time.time())
            self.served = served  # one assignment: requests in flight keep the object they started with
            return served

    # -- scoring -----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self.served is None or self.served.scorer is None or time.monotonic() < self._live_after

    def mark_down(self, error: BaseException) -> None:
        """Note that Neo4j failed: answer from the cache for a while (see the module docstring)."""
        self._was_down = True
        self._live_after = time.monotonic() + RETRY_LIVE_S
        self.last_error = f"{type(error).__name__}: {str(error)[:200]}" if str(error) else type(error).__name__
        log.warning("Neo4j unavailable, answering from the last batch plan: %s", self.last_error)

    def read(self, work: Callable[[neo4j.ManagedTransaction | neo4j.Transaction], Any]) -> Any:
        """Run ``work`` in one read transaction, within the API's timeout; no retry (a late answer is no answer).

        The transaction's timeout is enforced by the server; a server that does not answer at all (hung, or the
        network gone) would leave the driver waiting on its socket, so the call also runs under a deadline here.

        Raises:
            Neo4jUnavailableError: Neo4j failed or did not answer in time.
        """
        timeout = self.api.neo4j_timeout_s

        def in_transaction() -> Any:
            with self.driver.session(database=self.database, default_access_mode=neo4j.READ_ACCESS) as session:
                with session.begin_transaction(timeout=timeout, metadata={"app": "ringwatch", "job": "api"}) as tx:
                    return work(tx)

        try:
            return self._calls.submit(in_transaction).result(timeout=timeout + DEADLINE_SLACK_S)
        except (*NEO4J_DOWN, FutureTimeout) as e:
            self.mark_down(e)
            raise Neo4jUnavailableError(f"Neo4j did not answer: {self.last_error}") from e

    def score_live(self, served: Served, account_id: str, changed: bool = False) -> ScoredField | None:
        """The live score, or None when Neo4j is (recently found) down or the model could not be prepared.

        Args:
            changed: the account's relationships changed since the batch run (an event was just written for it):
                it is recomputed without reading their digest first.
        """
        if served.scorer is None or time.monotonic() < self._live_after:
            return None
        scorer = served.scorer
        try:
            return self.read(lambda tx: scorer.score(tx, [account_id], recompute=changed))
        except Neo4jUnavailableError:
            return None

    def ping(self) -> bool:
        """True when Neo4j answers now (closes the breaker; loads the graph's tallies if they are missing)."""
        try:
            self.read(lambda tx: tx.run(PING).single())
        except Neo4jUnavailableError:
            return False
        served = self.served
        try:
            if served is not None and served.scorer is None:
                self.load()
            elif served is not None and served.scorer is not None and self._was_down:
                # A restarted server has forgotten its query plans: plan them now, not in a request's time.
                with self.driver.session(database=self.database, default_access_mode=neo4j.READ_ACCESS) as session:
                    session.execute_read(served.scorer.warm_up)
        except (RingwatchError, *NEO4J_DOWN) as e:
            self.last_error = str(e)[:200]
            return False
        self._was_down = False
        self._live_after = 0.0
        return True
