"""``ringwatch serve --replicas N``: the same FastAPI app as N Ray Serve replicas behind Ray's HTTP proxy.

Each replica builds its own state (driver, champion, tallies, fallback plans) with
:func:`serving.api.server.build_state` when it starts — the builder form of ``serve.ingress`` — so a replica is
exactly the single-process server, and Ray Serve spreads requests over them (on one machine or a cluster:
``RAY_ADDRESS``). A reload (``POST /v1/admin/reload``) reaches the replica that answers it; reload every replica
with ``serve.get_app_handle`` or by redeploying (the README says how).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

APP_NAME = "ringwatch-api"


def replica_app() -> FastAPI:
    """The ASGI app of one replica (called by Ray Serve on the replica, never at import)."""
    from serving.api.app import create_app
    from serving.api.server import build_state

    return create_app(build_state())


def build_deployment(replicas: int, max_ongoing_requests: int = 16) -> Any:
    """The Ray Serve application: ``replicas`` copies of the API (bound, not yet running).

    Raises:
        ValueError: ``replicas`` is below 1.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    from ray import serve

    deployment: Any = serve.deployment(
        serve.ingress(replica_app)(),
        name="RingwatchApi",
        num_replicas=replicas,
        max_ongoing_requests=max_ongoing_requests,
        health_check_period_s=10,
    )
    return deployment.bind()


def run_replicas(host: str, port: int, replicas: int, max_ongoing_requests: int, address: str | None) -> None:
    """Start Ray (or join ``address``), deploy the app on ``host:port`` and block until interrupted."""
    import time

    import ray
    from ray import serve

    from gnn.runtime import init_ray

    init_ray(address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_deployment(replicas, max_ongoing_requests), name=APP_NAME, route_prefix="/", blocking=False)
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()
        ray.shutdown()
