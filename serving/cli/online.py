"""``ringwatch serve``: the online API (live scores and decisions over HTTP, :mod:`serving.api`)."""

from __future__ import annotations

from typing import Annotated

import typer

from graph.settings import load_settings
from serving.api.auth import check_bind
from serving.api.settings import load_api_settings
from serving.cli.console import err_console


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; beyond loopback only with RINGWATCH_API_KEYS.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes.")] = 1,
    replicas: Annotated[
        int, typer.Option(min=0, max=256, help="Run N Ray Serve replicas instead of uvicorn workers (0: off).")
    ] = 0,
) -> None:
    """Serve the online API: POST /v1/score, POST /v1/events, GET /v1/accounts/{id}, /healthz, /readyz, /metrics,
    docs at /docs. Reload the champion with POST /v1/admin/reload or SIGHUP."""
    settings = load_settings()
    api = load_api_settings()
    check_bind(host, api.api_keys)
    where = f"http://{host}:{port}"
    if replicas:
        from serving.api.replicas import run_replicas

        err_console.print(f"serving {replicas} Ray Serve replica(s) on {where} (docs at {where}/docs)")
        run_replicas(host, port, replicas, api.max_in_flight, settings.ray_address)
        return
    import uvicorn

    err_console.print(f"serving on {where} with {workers} worker(s) (docs at {where}/docs)")
    uvicorn.run(
        "serving.api.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        limit_concurrency=api.max_in_flight * 4,
        timeout_graceful_shutdown=10,
    )
