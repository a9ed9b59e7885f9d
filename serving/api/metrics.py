"""Prometheus metrics of the API: requests and latency by route and outcome, the model served, degraded mode.

Each app has its own registry (two apps in one process — tests, Ray Serve replicas — never share counters).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Latency buckets (seconds): the online scoring range, 2 ms to 5 s.
BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ApiMetrics:
    """The API's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ringwatch_api_requests",
            "Requests answered, by route and outcome",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ringwatch_api_request_seconds",
            "Request latency, by route and outcome",
            ["route", "outcome"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "ringwatch_api_stage_seconds",
            "Time in each step of a live score (neo4j_read, features, model)",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.model = Gauge(
            "ringwatch_api_model_info",
            "The model served (1 for the current version)",
            ["version"],
            registry=self.registry,
        )
        self.degraded = Gauge(
            "ringwatch_api_degraded", "1 while answers come from the last batch run's plan", registry=self.registry
        )
        self.shed = Counter(
            "ringwatch_api_shed", "Requests refused with 503 because too many were in flight", registry=self.registry
        )

    def observe(self, route: str, outcome: str, seconds: float) -> None:
        self.requests.labels(route, outcome).inc()
        self.latency.labels(route, outcome).observe(seconds)

    def serve_model(self, version: str) -> None:
        """Mark ``version`` as the one served (the previous one drops to 0)."""
        for metric in self.model.collect():
            for sample in metric.samples:
                self.model.labels(sample.labels["version"]).set(0)
        self.model.labels(version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
