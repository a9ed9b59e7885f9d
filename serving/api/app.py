"""The online API: live scores and decisions over HTTP (FastAPI), the same graph and models as the batch job.

Routes (``/docs`` has the schemas and examples):

- ``POST /v1/score`` — score an account live from its receptive field (:mod:`serving.api.scorer`);
- ``POST /v1/events`` — validate and write one event exactly once, then score its account
  (:mod:`serving.api.events`);
- ``GET /v1/accounts/{account_id}`` — the investigator's view of the stored batch results, as JSON;
- ``POST /v1/admin/reload`` — load the current champion and swap it in (also on SIGHUP, :mod:`serving.cli.online`);
- ``GET /healthz`` (the process answers), ``GET /readyz`` (Neo4j reachable, model loaded), ``GET /metrics``.

Every ``/v1`` route and ``/metrics`` need ``Authorization: Bearer <key>`` when keys are configured
(:mod:`serving.api.auth`). Errors are one JSON line (``{"error": …}``), never a stack trace.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from graph.errors import ConfigurationError, GraphWriteError, RingwatchError
from graph.logs import logger
from serving.api.auth import bearer_token, key_matches
from serving.api.events import EventRejectedError
from serving.api.guard import RequestGuard
from serving.api.metrics import ApiMetrics
from serving.api.schemas import (
    AccountIdText,
    AccountScoreOut,
    EventOut,
    EventRequest,
    HealthOut,
    ProblemOut,
    ReadyOut,
    ReloadOut,
    ScoreRequest,
)
from serving.api.scorer import AccountScore
from serving.api.state import NEO4J_DOWN, ApiState, Neo4jUnavailableError, Served, decide
from serving.investigate import UnknownAccountError, investigate

log = logger(__name__)

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": ProblemOut, "description": "missing or wrong API key"},
    413: {"model": ProblemOut, "description": "request body too large"},
    422: {"model": ProblemOut, "description": "the request breaks the schema or an ingestion rule"},
    503: {"model": ProblemOut, "description": "overloaded (see Retry-After) or Neo4j unavailable"},
}


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _score_out(
    served: Served, account: AccountScore, version: str, computed_ms: float, degraded: bool
) -> AccountScoreOut:
    return AccountScoreOut(
        account_id=account.account_id,
        scores=account.scores,
        score=account.score,
        label=account.label,
        thresholds=served.thresholds,
        decision=decide(account.scores, served.bands),  # type: ignore[arg-type]
        reasons=account.reasons,
        model_version=version,
        computed_at=_iso(computed_ms),
        degraded=degraded,
        score_age_s=max(0.0, round(time.time() - computed_ms / 1000, 3)) if degraded else 0.0,
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # Neo4j temporal values


def create_app(state: ApiState, metrics: ApiMetrics | None = None) -> FastAPI:
    """The API over ``state`` (already loaded or not: ``/readyz`` says which)."""
    metrics = metrics or ApiMetrics()
    api = state.api
    app = FastAPI(
        title="ringwatch online API",
        version="1",
        description="Live fraud-ring risk scores and decisions from the same graph and models as the batch job.",
    )
    app.state.ringwatch = state
    app.state.metrics = metrics

    def authorised(authorization: str | None = Header(default=None, include_in_schema=False)) -> None:
        if not api.api_keys:
            return  # no key configured: the server only listens on loopback (serving.api.auth.check_bind)
        token = bearer_token(authorization)
        if token is None or not key_matches(token, api.api_keys):
            raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})

    def served() -> Served:
        current = state.served
        if current is None:
            raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": str(api.retry_after_s)})
        return current

    def score_one(current: Served, account_id: str, changed: bool = False) -> AccountScoreOut:
        live = state.score_live(current, account_id, changed)
        if live is not None:
            for stage, seconds in live.timings.items():
                metrics.stage.labels(stage).observe(seconds)
            if not live.accounts:
                raise HTTPException(404, f"no account {account_id!r} in the graph")
            return _score_out(current, live.accounts[0], current.version or "", time.time() * 1000, False)
        cached = current.cache.get(account_id) if current.cache is not None else None
        if cached is None:
            raise HTTPException(
                503,
                "Neo4j is unavailable and the last batch run has no score for this account",
                headers={"Retry-After": str(api.retry_after_s)},
            )
        return _score_out(current, cached.account, cached.model_version, cached.scored_at_ms, True)

    @app.post("/v1/score", response_model=AccountScoreOut, responses=PROBLEMS, dependencies=[Depends(authorised)])
    def score(body: ScoreRequest) -> AccountScoreOut:
        """Score one account live from its receptive field in Neo4j; the decision follows the score bands.

        When Neo4j is slow or down, the last batch run's score answers, with ``"degraded": true`` and its age.
        """
        return score_one(served(), body.account_id)

    @app.post("/v1/events", response_model=EventOut, responses=PROBLEMS, dependencies=[Depends(authorised)])
    def events(body: EventRequest) -> EventOut:
        """Validate one event by the input contract's rules, write it exactly once (keyed by its content hash:
        a retried request never counts twice), then score its account and decide."""
        current = served()
        try:
            written = state.events.write(body.table, dict(body.row))
        except GraphWriteError as e:
            raise HTTPException(503, f"the event could not be written: {e}", headers={"Retry-After": "1"}) from e
        except NEO4J_DOWN as e:
            state.mark_down(e)
            raise HTTPException(
                503, "Neo4j is unavailable: the event was not written", headers={"Retry-After": str(api.retry_after_s)}
            ) from e
        return EventOut(
            event_id=written.event_id,
            written=written.written,
            account=score_one(current, written.account_id, changed=written.written),
        )

    @app.get("/v1/accounts/{account_id}", responses=PROBLEMS, dependencies=[Depends(authorised)])
    def account(account_id: AccountIdText = Path(examples=["acc_000123"])) -> dict[str, Any]:
        """The stored batch results of an account — scores, label, reasons, ring and verdict — as the
        investigator sees them (``ringwatch investigate``)."""
        try:
            view = investigate(state.driver, state.database, account_id)
        except UnknownAccountError as e:
            raise HTTPException(404, str(e)) from e
        except NEO4J_DOWN as e:
            state.mark_down(e)
            current = served()
            cached = current.cache.get(account_id) if current.cache is not None else None
            if cached is None:
                raise HTTPException(503, "Neo4j is unavailable", headers={"Retry-After": str(api.retry_after_s)}) from e
            return _score_out(current, cached.account, cached.model_version, cached.scored_at_ms, True).model_dump()
        return {**_json_safe(view), "degraded": False}

    @app.post("/v1/admin/reload", response_model=ReloadOut, responses=PROBLEMS, dependencies=[Depends(authorised)])
    def reload() -> ReloadOut:
        """Load the registry's current champion (and the graph's tallies, the fallback plans) and swap it in;
        requests in flight finish with the model they started with."""
        before = state.served.version if state.served else None
        started = time.perf_counter()
        now = state.load()
        metrics.serve_model(now.version or "")
        return ReloadOut(
            model_version=now.version or "", previous_version=before, seconds=time.perf_counter() - started
        )

    @app.get("/healthz", response_model=HealthOut)
    def healthz() -> HealthOut:
        """The process answers."""
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
    def readyz(response: Response) -> ReadyOut:
        """Ready: Neo4j answers and a model is loaded. Degraded (scores from the last batch run) is not ready."""
        neo4j_ok = state.ping()
        current = state.served
        loaded = current is not None and current.scorer is not None
        degraded = state.degraded
        metrics.degraded.set(1 if degraded else 0)
        ready = neo4j_ok and loaded and not degraded
        if not ready:
            response.status_code = 503
        cache_at = current.cache.scored_at_ms if current is not None and current.cache is not None else None
        return ReadyOut(
            ready=ready,
            neo4j=neo4j_ok,
            model_loaded=current is not None,
            model_version=current.version if current is not None else None,
            degraded=degraded,
            cache_scored_at=_iso(cache_at) if cache_at else None,
            detail=None if ready else state.last_error,
        )

    @app.get("/metrics", dependencies=[Depends(authorised)], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics: requests and latency by route and outcome, the model version, degraded mode."""
        metrics.degraded.set(1 if state.degraded else 0)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    _handlers(app)
    app.add_middleware(
        RequestGuard,
        max_in_flight=api.max_in_flight,
        max_body_bytes=api.max_body_bytes,
        retry_after_s=api.retry_after_s,
        metrics=metrics,
    )
    if state.served is not None and state.served.version:
        metrics.serve_model(state.served.version)
    return app


def _problem(status: int, error: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    body = ProblemOut(error=error, **extra).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _handlers(app: FastAPI) -> None:
    """One JSON line per error; the traceback of an unexpected one goes to the log with a request id, never out."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _problem(e.status_code, str(e.detail), headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": str(err.get("type"))}
            for err in e.errors()[:10]
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        rule = f"{'.'.join(first['loc'][1:]) or 'body'}: {first['msg']}"
        return _problem(422, "the request does not match the schema", rule=rule, details=details)

    @app.exception_handler(EventRejectedError)
    async def rejected(_: Request, e: EventRejectedError) -> JSONResponse:
        return _problem(422, "the event breaks the input contract; nothing was written", rule=e.rule)

    @app.exception_handler(Neo4jUnavailableError)
    async def unavailable(_: Request, e: Neo4jUnavailableError) -> JSONResponse:
        return _problem(503, "Neo4j is unavailable", headers={"Retry-After": "1"})

    @app.exception_handler(ConfigurationError)
    async def misconfigured(_: Request, e: ConfigurationError) -> JSONResponse:
        log.error("API configuration error: %s", e)
        return _problem(500, f"the server is misconfigured: {e}")

    @app.exception_handler(RingwatchError)
    async def ringwatch_error(_: Request, e: RingwatchError) -> JSONResponse:
        log.error("API request failed: %s", e)
        return _problem(500, str(e).splitlines()[0][:300])

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.error("unexpected API error (request %s)", request_id, exc_info=e)
        return _problem(500, f"internal error (request {request_id}; see the server log)")
