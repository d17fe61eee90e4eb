"""The gateway's limiter and record step, watched: what they decide also goes to the tally.

``WatchedLimiter`` is the ``Limiter`` contract around the real ``LocalLimiter`` (the same decisions,
``limits.decide``), so the admission step runs unchanged; what it charged, settled and passed over is written
down as well. Requests count against a limit when admitted; tokens count, at the time of admission, as what
the answer really used once it is settled (a reservation is a hold, not use). ``WatchedRecord`` is the walk's
record step around the real ``Recorder``: every try's outcome, including the attempts the walk's own time
limit cut short, which the providers never see end.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gateway.errors import UpstreamError
from gateway.limits.base import Immediate
from gateway.limits.local import LocalLimiter
from gateway.limits.model import Admission, BucketSpec, Budget, Candidate, Reservation, Strategy
from gateway.routing.outcomes import Recorder
from gateway.sim.tally import Tally
from gateway.sim.trace import CURRENT


class WatchedLimiter(Immediate):
    mode = "local"

    def __init__(self, clock: Callable[[], float], tally: Tally) -> None:
        self.inner = LocalLimiter(clock=clock)
        self._clock = clock
        self.tally = tally
        self._held: dict[int, tuple[Reservation, float]] = {}  # reservations with tokens, until settled
        # unwatched: the inner limiter's own
        self.cooldowns, self.correct = self.inner.cooldowns, self.inner.correct
        self.start, self.close = self.inner.start, self.inner.close

    def admit_now(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission:
        admission = self.inner.admit_now(candidates, quotas, strategy, budgets)
        now = self._clock()
        trace = CURRENT.get(None)
        for deployment, why in admission.skipped:
            reason = "cooldown" if why == "cooldown" else "full"
            if reason == "full":
                self.tally.full(deployment, now)
            if trace is not None:
                trace.passed.setdefault(deployment, reason)
        reservation = admission.reservation  # made whenever a candidate is chosen
        if reservation is not None:
            # the buckets as charged: the chosen candidate's and the quotas, each cost as admission took it
            if self.tally.requested(reservation.buckets, now):
                self._held[id(reservation)] = (reservation, now)
            if trace is not None and trace.admitted < 0:
                trace.admitted = now
        return admission

    def settle_now(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> list[tuple[BucketSpec, float]]:
        returned = self.inner.settle_now(reservation, actual_tokens, actual_cost)
        held = self._held.pop(id(reservation), None)
        at = held[1] if held is not None else self._clock()
        if actual_tokens is None:  # never reached the provider: its request counts come back too
            self.tally.requested(reservation.buckets, at, -1.0)
        else:  # what the limiter kept of the reservation: the usage, bounded as it bounds it
            self.tally.used(reservation.buckets, returned, at)
        return returned

    # Cooling down is noted as it is asked for, and the inner limiter's own coroutine is what the caller awaits
    # (rather than one more of ours around it).

    def cooldown(
        self, deployment_id: str, account: str | None, seconds: float, drain: Sequence[BucketSpec] = ()
    ) -> Coroutine[Any, Any, None]:
        self.tally.cooldown(deployment_id)
        return self.inner.cooldown(deployment_id, account, seconds, drain)


class WatchedRecord:
    """The walk's record step: the gateway's ``Recorder`` (circuit breaker, latency, metrics), watched."""

    def __init__(self, inner: Recorder, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally
        self.allow = inner.allow  # the circuit breaker's, unwatched
        self.started = inner.started

    def finished(
        self, deployment_id: str, error: UpstreamError | None, elapsed: float, stream: bool, counted: bool = True
    ) -> None:
        self.inner.finished(deployment_id, error, elapsed, stream, counted)
        if counted:
            self.tally.attempt(deployment_id, error, CURRENT.get())
