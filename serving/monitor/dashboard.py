"""``ringwatch dashboard``: a small web page for stakeholders on 127.0.0.1 (FastAPI, Jinja2, matplotlib SVG).

The page reads the monitoring history (flagged share per threat, drift, churn over runs), Neo4j (alerts open
and closed, verdict backlog, model versions on the accounts, new rings per day, the latest run's champion-vs-
challenger comparison)
and MLflow (registered versions, which is the champion, and each version's validation gate) on every request;
the charts (:mod:`serving.monitor.charts`) are ``<img>`` elements pointing at
``/charts/<name>.svg``. ``/api/summary`` serves the same data as JSON. A source that cannot be read (Neo4j
down, no MLflow store yet) shows as a note on the page instead of an error page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import neo4j
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from graph import schema as s
from graph.logs import logger
from graph.queries import monitor as q
from graph.settings import Settings
from serving.monitor import charts
from serving.monitor.history import read_history
from serving.monitor.job import CHAMPION_REF, PREVIOUS
from serving.monitor.quality import quality_series
from serving.score import latest_completed_run

TEMPLATES: Final = Path(__file__).parent / "templates"
HISTORY_SHOWN: Final = 30
#: Seconds the page's data is reused across the page and its chart requests.
DATA_TTL_S: Final = 5.0
CHART_NAMES: Final = (
    "flagged",
    "rings",
    "precision",
    "backlog",
    "feature_drift_now",
    "feature_drift_over_time",
    "score_drift",
    "quality",
)

log = logger(__name__)


def dashboard_data(settings: Settings, driver: neo4j.Driver | None) -> dict[str, Any]:
    """Everything the page shows, as plain data (see the module docstring)."""
    history = read_history(settings)[-HISTORY_SHOWN:]
    notes: list[str] = []
    alerts: list[dict[str, Any]] = []
    models_in_use: list[dict[str, Any]] = []
    shadow: dict[str, Any] = {}
    rings_by_day: list[dict[str, Any]] = []
    if driver is not None:
        try:
            read = neo4j.RoutingControl.READ
            records, _, _ = driver.execute_query(q.ALERTS, limit=200, database_=settings.neo4j_database, routing_=read)
            alerts = [dict(r["alert"]) for r in records]
            records, _, _ = driver.execute_query(q.MODELS_IN_USE, database_=settings.neo4j_database, routing_=read)
            models_in_use = [dict(r) for r in records]
            shadow = shadow_comparison(latest_completed_run(driver, settings.neo4j_database))
            records, _, _ = driver.execute_query(q.RINGS_BY_DAY, database_=settings.neo4j_database, routing_=read)
            rings_by_day = [dict(r) for r in records]
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as e:
            notes.append(f"Neo4j could not be read: {e}")
    else:
        notes.append("Neo4j is not connected: alerts and models in use are not shown")
    return {
        "history": history,
        "latest": history[-1] if history else None,
        "alerts": alerts,
        "open_alerts": [a for a in alerts if a.get("status") == "open"],
        "closed_alerts": [a for a in alerts if a.get("status") != "open"],
        "models_in_use": models_in_use,
        "registry": _registry(settings, notes),
        "shadow": shadow,
        "rings_by_day": rings_by_day,
        "quality": [p.__dict__ for p in quality_series(settings)],
        "notes": notes,
    }


def shadow_comparison(run: dict[str, Any] | None) -> dict[str, Any]:
    """The champion-vs-challenger comparison a scoring run stored (``ringwatch score --challenger``), by name
    without its ``shadow_`` prefix, with the champion's version; empty when the run had no challenger."""
    shadow = {k.removeprefix("shadow_"): v for k, v in (run or {}).items() if k.startswith("shadow_")}
    if shadow:
        shadow["champion_model_version"] = (run or {}).get("model_version")
        shadow["scoring_run_id"] = (run or {}).get("run_id")
    return shadow


def _registry(settings: Settings, notes: list[str]) -> list[dict[str, Any]]:
    from gnn.tracking import REGISTERED_MODEL, tracking_client

    try:
        client = tracking_client(settings)
        versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
        aliases = {str(v): a for a, v in (client.get_registered_model(REGISTERED_MODEL).aliases or {}).items()}
    except Exception as e:  # noqa: BLE001  (no registry yet, MLflow unreachable: the rest of the page shows)
        notes.append(f"model registry not read: {type(e).__name__}")
        return []
    return [
        {
            "version": f"{REGISTERED_MODEL}/{v.version}",
            "alias": aliases.get(str(v.version), ""),
            "created": v.creation_timestamp,
            "run": (v.tags or {}).get("run", ""),
            "gate": (v.tags or {}).get("gate", "not run"),
            "gate_reason": (v.tags or {}).get("gate_reason", ""),
        }
        for v in sorted(versions, key=lambda v: int(v.version), reverse=True)
    ]


def render_chart(name: str, data: dict[str, Any]) -> str:
    """The SVG of chart ``name`` (one of :data:`CHART_NAMES`)."""
    history = data["history"]
    runs = [h["scoring_run_id"].split("-")[1] if "-" in h["scoring_run_id"] else h["scoring_run_id"] for h in history]
    latest = data["latest"] or {}
    if name == "flagged":
        series = {t: [h["flagged_share"].get(t) for h in history] for t in s.THREATS}
        return charts.lines_chart("Flagged share per threat", runs, series, "share of accounts")
    if name == "rings":
        days = data["rings_by_day"]
        series = {"new rings": [d["new"] for d in days], "of those, still active": [d["active"] for d in days]}
        return charts.lines_chart("Rings by day of first detection", [d["day"] for d in days], series, "rings")
    if name == "precision":
        return charts.precision_by_week(latest.get("efficacy", {}).get("by_week", {}))
    if name == "backlog":
        series = {t: [h["efficacy"]["backlog"].get(t) for h in history] for t in s.THREATS}
        return charts.lines_chart("Verdict backlog (flagged, never reviewed)", runs, series, "accounts")
    if name == "feature_drift_now":
        drift = latest.get("feature_drift", {})
        reference = CHAMPION_REF if CHAMPION_REF in drift else PREVIOUS
        return charts.psi_bars(f"Feature drift, latest run vs {reference}", drift.get(reference, []))
    if name == "feature_drift_over_time":
        series = {
            ref: [(h["feature_drift"].get(ref) or [{"psi": None}])[0]["psi"] for h in history]
            for ref in (PREVIOUS, CHAMPION_REF)
        }
        return charts.lines_chart("Largest feature PSI per run", runs, series, "PSI")
    if name == "score_drift":
        series = {
            t: [
                next((d["psi"] for d in h["score_drift"].get(PREVIOUS, []) if d["name"] == f"score_{t}"), None)
                for h in history
            ]
            for t in s.THREATS
        }
        return charts.lines_chart("Score PSI per threat vs previous run", runs, series, "PSI")
    if name == "quality":
        points = data["quality"]
        tables = sorted({t for p in points for t in p["reject_rate"]})
        series = {t: [p["reject_rate"].get(t) for p in points] for t in tables}
        return charts.lines_chart("Reject rate per table per ingest", [p["ingest"] for p in points], series, "rate")
    raise KeyError(name)


def create_app(settings: Settings, driver_factory: Callable[[], neo4j.Driver | None]) -> FastAPI:
    """The dashboard's app; ``driver_factory`` gives the (shared, caller-owned) driver or None."""
    app = FastAPI(title="ringwatch dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    lock = threading.Lock()
    cached: dict[str, Any] = {}

    def current() -> dict[str, Any]:
        """The page's data, read once for a page and its charts (they are requested together), then again
        after :data:`DATA_TTL_S`."""
        with lock:
            if not cached or time.monotonic() - cached["at"] > DATA_TTL_S:
                cached.update(at=time.monotonic(), data=dashboard_data(settings, driver_factory()))
            return dict(cached["data"])

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return env.get_template("dashboard.html").render(data=current(), charts=CHART_NAMES)

    @app.get("/charts/{name}.svg")
    def chart(name: str) -> Response:
        if name not in CHART_NAMES:
            raise HTTPException(404, f"no chart {name!r}")
        return Response(render_chart(name, current()), media_type="image/svg+xml")

    @app.get("/api/summary")
    def summary() -> JSONResponse:
        data = current()
        return JSONResponse({k: v for k, v in data.items() if k != "history"} | {"runs": len(data["history"])})

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; an absent one would log a 404 in the browser's console

    return app
