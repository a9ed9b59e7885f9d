"""Putting the API together from the environment: settings, driver, state, app, SIGHUP reload.

:func:`app_from_env` is the factory uvicorn calls in each worker (``ringwatch serve``); Ray Serve replicas call
:func:`build_state` and :func:`serving.api.app.create_app` themselves (:mod:`serving.api.replicas`).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import neo4j
from fastapi import FastAPI

from graph.driver import build_driver
from graph.errors import RingwatchError
from graph.logs import logger
from graph.settings import Settings, load_settings
from serving.api.app import create_app
from serving.api.settings import ApiSettings, load_api_settings
from serving.api.state import ApiState

log = logger(__name__)


def driver_options(api: ApiSettings) -> dict[str, Any]:
    """Driver settings for serving: every wait bounded by the API's Neo4j timeout, no retrying a late read
    (the cache answers instead), a pool as large as the requests allowed in flight."""
    return {
        "connection_timeout": api.neo4j_timeout_s,
        "connection_acquisition_timeout": api.neo4j_timeout_s,
        "max_transaction_retry_time": 0.0,
        "max_connection_pool_size": api.max_in_flight + 2,
    }


def build_state(settings: Settings | None = None, api: ApiSettings | None = None) -> ApiState:
    """Settings, driver and loaded state. Neo4j down at start-up is not fatal: the state serves degraded.

    Raises:
        ConfigurationError: invalid settings.
        ModelError / TrackingError: no model to serve.
    """
    settings = settings or load_settings()
    api = api or load_api_settings()
    try:
        driver = build_driver(settings, **driver_options(api))
    except RingwatchError as e:
        log.warning("Neo4j unavailable at start-up (%s): serving degraded until it answers", e)
        driver = build_driver(settings, verify=False, **driver_options(api))
    state = ApiState(settings, api, driver)
    state.load()
    return state


def install_sighup(app: FastAPI) -> None:
    """``kill -HUP`` reloads the champion in the background (as ``POST /v1/admin/reload`` does)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return

    def reload_in_background(_signum: int, _frame: object) -> None:
        threading.Thread(target=reload_champion, args=(app,), name="ringwatch-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, reload_in_background)


def reload_champion(app: FastAPI) -> str | None:
    """Load the current champion into ``app``'s state; errors are logged (the old model keeps serving)."""
    state: ApiState = app.state.ringwatch
    try:
        served = state.load()
    except (RingwatchError, neo4j.exceptions.DriverError, OSError) as e:
        log.error("reload failed, the previous model keeps serving: %s", e)
        return None
    app.state.metrics.serve_model(served.version or "")
    log.info("reloaded: serving model %s", served.version)
    return served.version


def app_from_env() -> FastAPI:
    """The app for one uvicorn worker, configured from the environment."""
    app = create_app(build_state())
    install_sighup(app)
    return app
