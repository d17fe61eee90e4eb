"""The request path's counters and histograms (``Metrics.counter``, ``Metrics.histogram``) write prometheus_client's
values directly, past its per-call checks: what /metrics shows must be what the public API would have made."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from gateway.metrics import Metrics

# Around, on and between the bounds (an amount on a bound belongs to that bound's bucket), and past the last.
AMOUNTS = [0.0, 0.0003, 0.0005, 0.0007, 0.005, 0.0051, 0.3, 1, 2.5, 7, 119.9, 120, 121, 1e9, math.inf]


def _exposition(metrics: Metrics) -> list[str]:
    return [line for line in generate_latest(metrics.registry).decode().splitlines() if "_created" not in line]


def test_fast_updates_expose_what_the_public_api_would() -> None:
    fast, public = Metrics(), Metrics()
    for i, amount in enumerate(AMOUNTS):
        endpoint = "chat" if i % 2 else "embeddings"
        fast.histogram(fast.overhead, endpoint).observe(amount)
        public.overhead.labels(endpoint).observe(amount)
        fast.histogram(fast.duration, endpoint).observe(amount)
        public.duration.labels(endpoint).observe(amount)
        fast.counter(fast.tokens, "a/m", "prompt").inc(i)
        public.tokens.labels("a/m", "prompt").inc(i)
        fast.counter(fast.requests, endpoint, "m", "200").inc()
        public.requests.labels(endpoint, "m", "200").inc()
    assert _exposition(fast) == _exposition(public)
    assert 'gateway_overhead_seconds_bucket{endpoint="chat",le="0.0005"} 1.0' in _exposition(fast)


def test_a_counter_still_refuses_to_go_down() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="non-negative"):
        metrics.counter(metrics.tokens, "a/m", "prompt").inc(-1)
