"""The walk's record and watch steps: every try's outcome to the circuit breaker, the latency averages and
the attempt metrics (a stream's first event is its time to first token); fallbacks to their counter; and,
when tracing is on, the spans of the admission and of each attempt."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from gateway import failures
from gateway.config.model import Deployment
from gateway.errors import UpstreamError
from gateway.metrics import Metrics
from gateway.routing.health import Health
from gateway.routing.steps import Spans

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is configured
    from gateway.tracing import Tracer


class Recorder:
    def __init__(self, health: Health, metrics: Metrics, tracer: Tracer | None = None) -> None:
        self._health = health
        self._metrics = metrics
        self._spans = None if tracer is None else _Spans(tracer)
        # The circuit's own answers, not wrapped (each is called once per attempt).
        self.allow = health.allow
        self.started = health.started

    def finished(
        self, deployment_id: str, error: UpstreamError | None, elapsed: float, stream: bool, counted: bool = True
    ) -> None:
        ok = error is None or not failures.counts_against_circuit(error)
        ttft = elapsed if stream else None  # a stream's attempt ends at its first event
        self._health.finished(deployment_id, ok, elapsed, ttft)
        if counted:
            m = self._metrics
            if error is None:
                m.counter(m.attempts, deployment_id, "ok").inc()
                m.histogram(m.upstream_latency, deployment_id).observe(elapsed)
            else:
                m.counter(m.attempts, deployment_id, failures.outcome(error)).inc()
                m.counter(m.upstream_errors, deployment_id, failures.failure_class(error)).inc()

    def fell_back(self, route: str, source: str, target: str, error: UpstreamError) -> None:
        m = self._metrics
        m.counter(m.fallbacks, route, source, target, failures.failure_class(error)).inc()

    def spans(self) -> Spans | None:
        if self._spans is None or not self._spans.tracer.traced():
            return None
        return self._spans


class _Spans:
    """A traced request's admission and attempt spans (``Tracer.admission``, ``Tracer.attempt``)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def admitting(self, stage: str, candidates: Sequence[Deployment]) -> AbstractContextManager[object]:
        return self.tracer.admission(stage, [d.id for d in candidates])

    def attempt(self, deployment: Deployment, number: int) -> AbstractContextManager[object]:
        return self.tracer.attempt(deployment, number, failures.failure_class)
