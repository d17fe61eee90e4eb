"""Every Prometheus metric the gateway exposes, declared once; other modules only call these methods.

Metrics live in a registry owned by the app (not prometheus_client's global one), so tests and
several apps in one process never share counters. With several workers, each process sets
``PROMETHEUS_MULTIPROC_DIR`` (the CLI does) and /metrics aggregates all of them.
"""

from __future__ import annotations

import glob
import os
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.values import MutexValue

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The gateway's own time is a fraction of a millisecond when all is well; the upper buckets catch starved CPU,
# a slow Redis and the waits in its own queues.
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Counted:
    """One labelled counter, counted as ``Counter.inc`` counts it, straight into its value: prometheus_client
    checks on every call that the metric is a labelled child and looks for exemplars, three calls deep, which
    the request path's counters (made by ``Metrics.counter``) need not repeat. Tests hold it to the public
    API's output (tests/observability/test_metrics_fast.py).

    In one process the value is a float behind a lock. Only the event loop's thread writes the request path's
    counters, and the scrape that reads them runs there too, so the float is added to without the lock; the
    values of several workers (files) keep their own ``inc``."""

    def __init__(self, value: Any) -> None:
        self._value = value
        self._direct = type(value) is MutexValue

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        if self._direct:
            self._value._value += amount
        else:
            self._value.inc(amount)


class Observed:
    """One labelled histogram, observed as ``Histogram.observe`` observes (see ``Counted``): the sum, and the
    one bucket the amount falls in, found by bisection over the bounds instead of a loop."""

    def __init__(self, total: Any, buckets: Sequence[Any], bounds: Sequence[float]) -> None:
        self._sum = Counted(total)
        self._buckets = tuple(Counted(bucket) for bucket in buckets)
        self._bounds = tuple(bounds)

    def observe(self, amount: float) -> None:
        self._sum.inc(amount)
        self._buckets[bisect_left(self._bounds, amount)].inc(1)  # the first bound >= amount; the last is +Inf


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self._counted: dict[tuple[int, tuple[str, ...]], Counted] = {}  # see counter()
        self._observed: dict[tuple[int, tuple[str, ...]], Observed] = {}
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
        # Observability (README, Observability): the gateway's own time, fallbacks, providers' latency and
        # errors, and the limiter's headroom. Label values are configuration names and fixed vocabularies only.
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "The gateway's own time per request: its duration to the answer (a stream's first byte) less the "
            "time spent waiting on providers and on the client's upload",
            ["endpoint"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks_total",
            "Requests moved to another deployment after one failed, by route, from, to and the failure's class",
            ["route", "from_deployment", "to_deployment", "reason"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_latency_seconds",
            "Per successful attempt: from sending to the answer in hand (a JSON body, a stream's first event)",
            ["deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Failed upstream attempts by deployment and class (5xx, 429, timeout, connection, context_length, 4xx)",
            ["deployment", "class"],
            registry=r,
        )
        self.headroom = Gauge(
            "gateway_bucket_headroom_ratio",
            "Room left in a deployment's fullest-used rate-limit bucket (its account's or its own), 0 to 1",
            ["deployment"],
            registry=r,
            multiprocess_mode="livemin",
        )
        # Spend and budgets (README, Spend and budgets). End users never become label values: a budget
        # per end user reports as one label per key, the highest share any of its end users has used.
        self.cost = Counter(
            "gateway_cost_usd_total",
            "USD spent, priced from each answer's usage (estimates included), by deployment, key, tier and route",
            ["deployment", "key", "tier", "route"],
            registry=r,
        )
        self.budget_used = Gauge(
            "gateway_budget_used_ratio",
            "Share of a budget's cap spent in its current window (reservations in flight included), as this "
            "worker last saw it; budget = key:<key>:day|month, user:<key>:day|month (its most-spent end user), "
            "tier:<tier>:day|month",
            ["budget"],
            registry=r,
            multiprocess_mode="max",
        )

    def counter(self, metric: Counter, *values: str) -> Counted:
        """``metric.labels(*values)``, remembered, to count on the request path. Label values are bounded by
        design, so the label sets are few; prometheus_client's own lookup (a lock, every value converted)
        costs about a microsecond, and the request path makes several a request."""
        found = self._counted.get((id(metric), values))
        if found is None:
            found = self._counted[(id(metric), values)] = Counted(metric.labels(*values)._value)
        return found

    def histogram(self, metric: Histogram, *values: str) -> Observed:
        """``metric.labels(*values)``, remembered, to observe on the request path (see ``counter``)."""
        found = self._observed.get((id(metric), values))
        if found is None:
            child = metric.labels(*values)
            found = Observed(child._sum, child._buckets, child._upper_bounds)
            self._observed[(id(metric), values)] = found
        return found

    def render(self) -> bytes:
        if self.multiprocess_dir:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)


def clear_multiprocess_dir(path: str) -> None:
    """Forget every worker of an earlier run: the files a directory reused across restarts still holds (an
    emptyDir outlives its container) would otherwise add old counts and pin gauges (a circuit left open)."""
    for name in glob.glob(os.path.join(path, "*.db")):
        os.remove(name)


def worker_gone(pid: int, path: str) -> None:
    """A worker process ended: its live gauges (in flight, headroom) leave the sums; its counters stay."""
    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
