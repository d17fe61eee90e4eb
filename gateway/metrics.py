"""Every Prometheus metric the gateway exposes, declared once; other modules only call these methods.

Metrics live in a registry owned by the app (not prometheus_client's global one), so tests and
several apps in one process never share counters. With several workers, each process sets
``PROMETHEUS_MULTIPROC_DIR`` (the CLI does) and /metrics aggregates all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests_total",
            "Requests answered, by endpoint, model and status",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to last byte",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Streams: time to the first relayed event",
            ["deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "gateway_upstream_attempts_total",
            "Upstream attempts by deployment and outcome",
            ["deployment", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens_total", "Tokens reported by providers", ["deployment", "kind"], registry=r
        )
        self.inflight = Gauge(
            "gateway_inflight_requests", "Requests being served", registry=r, multiprocess_mode="livesum"
        )
        self.draining = Gauge("gateway_draining", "1 while shutting down", registry=r, multiprocess_mode="max")
        self.limiter_degraded = Gauge(
            "gateway_limiter_degraded",
            "1 while Redis is unreachable and limits run on local shares",
            registry=r,
            multiprocess_mode="max",
        )
        self.throttled = Counter(
            "gateway_throttled_total",
            "Requests refused by the gateway's own limits, by reason",
            ["reason"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "gateway_queue_wait_seconds",
            "Time requests waited in line for provider capacity",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.policy_info = Gauge(
            "gateway_policy_info",
            "1 for the routing policy version in force",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.policy_reloads = Counter(
            "gateway_policy_reloads_total", "Policy reloads by result (applied, rejected)", ["result"], registry=r
        )
        self.routed = Counter("gateway_routed_total", "Requests routed by policy rule", ["route", "rule"], registry=r)
        self.circuit_open = Gauge(
            "gateway_circuit_open",
            "1 while a deployment's circuit is open or half-open (out of normal service), 0 once closed",
            ["deployment"],
            registry=r,
            multiprocess_mode="max",
        )
        self.pool_wait = Histogram(
            "gateway_upstream_pool_wait_seconds",
            "Time requests waited for a free connection in a provider account's pool",
            ["account"],
            buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.pool_timeouts = Counter(
            "gateway_upstream_pool_timeouts_total",
            "Requests that found no free connection to a provider account within timeouts.pool",
            ["account"],
            registry=r,
        )
        self.log_dropped = Counter(
            "gateway_access_log_dropped_total",
            "Log lines dropped because stdout did not keep up (server.access_log_queue was full)",
            registry=r,
        )
        self.connections_refused = Counter(
            "gateway_client_connections_refused_total",
            "Client connections closed by the server's bounds, by reason",
            ["reason"],
            registry=r,
        )
        self.disconnects = Counter(
            "gateway_client_disconnects_total", "Clients that left before the end", ["endpoint"], registry=r
        )

    def render(self) -> bytes:
        if self.multiprocess_dir:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
