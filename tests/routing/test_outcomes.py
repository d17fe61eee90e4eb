"""The walk's record step: what each try's outcome does to the circuit and the attempt metrics."""

from __future__ import annotations

from gateway.config.model import CircuitSettings
from gateway.errors import UpstreamError, UpstreamPoolExhausted, UpstreamStatus
from gateway.metrics import Metrics
from gateway.routing.health import Health
from gateway.routing.outcomes import Recorder


def recorder() -> tuple[Recorder, Health, Metrics]:
    health, metrics = Health(CircuitSettings(failure_threshold=2)), Metrics()
    return Recorder(health, metrics), health, metrics


def attempts(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "gateway_upstream_attempts_total", {"deployment": "a/m", "outcome": outcome}
    )
    return value or 0.0


def fail(rec: Recorder, error: UpstreamError | None, counted: bool = True) -> None:
    rec.started("a/m")
    rec.finished("a/m", error, 0.05, stream=False, counted=counted)


def test_provider_failures_open_the_circuit_and_are_counted_by_status() -> None:
    rec, health, metrics = recorder()
    fail(rec, UpstreamStatus(503, "busy"))
    fail(rec, UpstreamStatus(503, "busy"))
    assert not rec.allow("a/m") and health.snapshot().state("a/m").circuit == "open"
    assert rec.allow("a/m", last_resort=True)  # every circuit open: one try anyway
    assert attempts(metrics, "503") == 2


def test_the_gateways_own_pool_and_a_providers_429_do_not() -> None:
    rec, health, metrics = recorder()
    for _ in range(3):
        fail(rec, UpstreamPoolExhausted("pool"))
        fail(rec, UpstreamStatus(429, "slow down"))
    assert rec.allow("a/m") and health.snapshot().state("a/m").circuit == "closed"
    assert attempts(metrics, "upstream_pool_exhausted") == 3 and attempts(metrics, "429") == 3


def test_a_client_that_left_is_not_counted() -> None:
    rec, health, metrics = recorder()
    fail(rec, None, counted=False)
    fail(rec, None)
    assert attempts(metrics, "ok") == 1 and health.snapshot().state("a/m").inflight == 0
