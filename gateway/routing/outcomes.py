"""The walk's record step: every try's outcome to the circuit breaker, the latency averages and the
attempt metrics (a stream's first event is its time to first token)."""

from __future__ import annotations

from gateway import failures
from gateway.errors import UpstreamError
from gateway.metrics import Metrics
from gateway.routing.health import Health


class Recorder:
    def __init__(self, health: Health, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics

    def allow(self, deployment_id: str, last_resort: bool = False) -> bool:
        return self._health.allow(deployment_id, last_resort)

    def started(self, deployment_id: str) -> None:
        self._health.started(deployment_id)

    def finished(
        self, deployment_id: str, error: UpstreamError | None, elapsed: float, stream: bool, counted: bool = True
    ) -> None:
        failed = error is not None and failures.counts_against_circuit(error)
        self._health.finished(deployment_id, ok=not failed, latency_s=elapsed, ttft_s=elapsed if stream else None)
        if counted:
            outcome = "ok" if error is None else failures.outcome(error)
            self._metrics.attempts.labels(deployment_id, outcome).inc()
