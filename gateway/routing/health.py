"""Per-deployment health: a circuit breaker and latency averages, decided locally, merged across replicas.

Pure, clock injected. On one replica ``Health`` is the whole truth. With Redis, ``limits.health_store.HealthSync``
sends ``deltas()`` every sync interval and feeds the fleet's merged view back through ``merge()``; between
syncs a replica decides on the merged counts plus its unsent outcomes, so it opens at once when it sees enough.

Circuit: closed -> open after ``failure_threshold`` consecutive failures, or when the window holds at least
``min_requests`` attempts with an error rate above ``error_rate_threshold``; open -> half_open after ``open_seconds``;
half_open lets a few probes through: a success closes it (and clears the counts), a failure re-opens it.

Deliberate approximations:
- The window is two fixed windows, the older weighted by its overlap with the last ``window_seconds``.
- Each replica allows ``ceil(half_open_probes / live replicas)`` probes per half-open period, so the fleet
  sends about ``half_open_probes`` (one per replica when replicas outnumber probes). Permits taken by
  requests that never report are granted again after ``open_seconds``.
- Any outcome reported while half-open counts as a probe, even from a request sent before the opening.
- A last-resort attempt (``allow(last_resort=True)``: every circuit of the request's plan is open and this
  deployment is the least bad of them) goes through an open circuit without changing it: its outcome is
  counted like any other, and the circuit still recovers through its half-open probes, here as in Redis.
- A transition this replica made but has not yet sent wins over the merged view until it is sent.
- Latency averages use successful requests only: a fast error is not a fast deployment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from gateway.config.model import CircuitSettings
from gateway.routing.snapshot import Circuit, DeploymentState, Snapshot

Event = Literal["open", "close"]
VIEW_TTL: Final = 1.0  # seconds a cached DeploymentState may lag the window's decay (it is rebuilt on any change)


@dataclass(slots=True)
class Delta:
    """One replica's news about a deployment since its last sync: counts, except ``inflight`` (a level).
    Mutable because ``finished`` (every request) adds to it; ``deltas()`` hands it over and starts anew."""

    successes: int = 0
    failures: int = 0
    trailing_failures: int = 0  # failures after the last success of this batch
    reset: bool = False  # a success happened: the fleet's consecutive count restarts at trailing_failures
    event: Event | None = None  # the last circuit transition this replica made
    latency_ms_sum: float = 0.0
    latency_count: int = 0
    ttft_ms_sum: float = 0.0
    ttft_count: int = 0
    inflight: int = 0

    def empty(self) -> bool:
        return not (self.successes or self.failures or self.reset or self.event or self.inflight)


@dataclass(frozen=True)
class RemoteState:
    """The fleet's merged view of one deployment, as the last sync returned it."""

    circuit: Circuit = "closed"
    retry_in: float = 0.0
    attempts: float = 0.0  # over the window, every replica
    failures: float = 0.0
    consecutive: int = 0
    inflight: int = 0  # every replica, this one's count as sent included
    ttft_ms: float | None = None
    latency_ms: float | None = None


_UNKNOWN = RemoteState()


@dataclass(slots=True)
class _Window:
    """Attempts and failures over about the last ``length`` seconds (two fixed windows)."""

    index: int = 0
    attempts: float = 0.0
    failures: float = 0.0
    previous_attempts: float = 0.0
    previous_failures: float = 0.0

    def counts(self, now: float, length: float) -> tuple[float, float]:
        weight = 1.0 - self._roll(now / length)
        return self.attempts + self.previous_attempts * weight, self.failures + self.previous_failures * weight

    def add(self, now: float, length: float, failed: bool) -> None:
        self._roll(now / length)
        self.attempts += 1
        self.failures += failed

    def _roll(self, t: float) -> float:
        """Move to the window holding ``t`` (counted in windows); the share of it that has passed."""
        i = math.floor(t)
        if i != self.index:
            adjacent = i == self.index + 1
            self.previous_attempts = self.attempts if adjacent else 0.0
            self.previous_failures = self.failures if adjacent else 0.0
            self.index, self.attempts, self.failures = i, 0.0, 0.0
        return t - i


@dataclass(slots=True)
class _Deployment:
    name: str
    circuit: Circuit = "closed"
    open_until: float = 0.0  # local clock
    permits: int = 0  # probes left in this half-open period
    permits_at: float = 0.0
    inflight: int = 0  # this replica
    sent_inflight: int = 0  # this replica's count in the last deltas()
    others_inflight: int = 0  # the other replicas', as of the last merge
    consecutive: int = 0
    window: _Window = field(default_factory=_Window)  # this replica's outcomes (used when not attached)
    base_attempts: float = 0.0  # the fleet's window counts at the last merge
    base_failures: float = 0.0
    ttft_ms: float | None = None
    latency_ms: float | None = None
    pending: Delta = field(default_factory=Delta)
    view: DeploymentState | None = None  # snapshot() is on every request: build a state only when it changed
    view_until: float = 0.0


class Health:
    """One per replica (per process): in-process state plus the latest merged view from Redis."""

    def __init__(
        self,
        settings: CircuitSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, Circuit], None] | None = None,
    ) -> None:
        """``on_change(deployment, circuit)`` hears of every transition of this replica's view."""
        self.settings = settings
        self._clock = clock
        self._on_change = on_change
        self._deployments: dict[str, _Deployment] = {}
        self._attached = False  # True while merges arrive: decide on fleet counts, not the local window
        self._replicas = 1
        # snapshot() is on every request while a request changes one or two deployments: it rebuilds only the
        # states dropped since the last one (``_stale``), or every outdated one once any has expired.
        self._last = Snapshot({})
        self._stale: dict[str, _Deployment] = {}
        self._expires = math.inf  # the soonest view_until of the last snapshot's states

    def snapshot(self) -> Snapshot:
        now = self._clock()
        stale = self._stale
        if now >= self._expires:  # a state may have expired: look at every one
            stale, states, expires = self._deployments, {}, math.inf
        elif stale:  # copied: a snapshot handed out never changes
            states, expires = dict(self._last.deployments), self._expires
        else:
            return self._last
        for name, d in stale.items():
            states[name] = self._state(d, now)
            if d.view_until < expires:  # not min(): this runs on every request
                expires = d.view_until
        self._expires, self._stale, self._last = expires, {}, Snapshot(states)
        return self._last

    def allow(self, deployment: str, last_resort: bool = False) -> bool:
        """May a request be sent now? A half-open circuit admits its probes; ``last_resort`` (every circuit
        of the plan is open and this is the least bad) is let through whatever the circuit."""
        d = self._get(deployment)
        circuit = self._advance(d, self._clock())
        if circuit == "half_open" and d.permits > 0:
            d.permits -= 1
            return True
        return circuit == "closed" or last_resort

    def started(self, deployment: str) -> None:
        d = self._get(deployment)
        d.inflight, d.view, self._stale[deployment] = d.inflight + 1, None, d

    def finished(self, deployment: str, ok: bool, latency_s: float, ttft_s: float | None) -> None:
        now, d = self._clock(), self._get(deployment)
        d.inflight, d.view, self._stale[deployment] = d.inflight - 1 if d.inflight > 0 else 0, None, d
        if self._advance(d, now) == "half_open":  # a probe's outcome
            if ok:
                self._close(d)
            else:
                self._open(d, now)
        if ok:
            self._sample(d, latency_s, ttft_s)
        p = d.pending
        d.window.add(now, self.settings.window_seconds, not ok)
        if ok:
            d.consecutive = p.trailing_failures = 0
            p.successes, p.reset = p.successes + 1, True
            return
        d.consecutive += 1
        p.failures, p.trailing_failures = p.failures + 1, p.trailing_failures + 1
        if d.circuit == "closed" and self._tripped(d, now):
            self._open(d, now)

    def deltas(self) -> Mapping[str, Delta]:
        out: dict[str, Delta] = {}
        for name, d in self._deployments.items():
            p = d.pending
            d.sent_inflight = p.inflight = d.inflight
            if not p.empty():
                d.base_attempts += p.successes + p.failures  # counted as the fleet's until the merge says
                d.base_failures += p.failures
                out[name], d.pending = p, Delta()
        return out

    def merge(self, remote: Mapping[str, RemoteState], *, replicas: int = 1) -> None:
        """Apply the fleet's view (a deployment missing from it is closed and idle there); ``replicas``, the
        live ones, sizes this replica's probe share."""
        now = self._clock()
        self._attached, self._replicas = True, max(1, replicas)
        for name in remote.keys() - self._deployments.keys():
            self._deployments[name] = _Deployment(name)
        self._expires = -math.inf  # every state is rebuilt
        for name, d in self._deployments.items():
            r, p, d.view = remote.get(name, _UNKNOWN), d.pending, None
            d.base_attempts, d.base_failures = r.attempts, r.failures
            d.consecutive = p.trailing_failures if p.reset else r.consecutive + p.trailing_failures
            d.others_inflight = max(0, r.inflight - d.sent_inflight)
            d.ttft_ms = d.ttft_ms if r.ttft_ms is None else r.ttft_ms
            d.latency_ms = d.latency_ms if r.latency_ms is None else r.latency_ms
            if p.event is None:
                self._follow(d, r, now)

    def detach(self) -> None:
        """The fleet's view is unavailable (Redis down): decide on this replica's own window until a merge."""
        self._attached, self._expires = False, -math.inf  # every state is rebuilt
        for d in self._deployments.values():
            d.others_inflight, d.view = 0, None

    def restore(self, deltas: Mapping[str, Delta]) -> None:
        """Take back the circuit events of deltas that never reached Redis, so the fleet learns of them later.
        Their counts are dropped: stale by the time Redis returns, and this replica's local window has them."""
        for name, delta in deltas.items():
            d = self._deployments.get(name)
            if d is not None and delta.event is not None and d.pending.event is None:
                d.pending.event = delta.event

    def _get(self, deployment: str) -> _Deployment:
        d = self._deployments.get(deployment)
        if d is None:
            d = self._deployments[deployment] = self._stale[deployment] = _Deployment(deployment)
        return d

    def _state(self, d: _Deployment, now: float) -> DeploymentState:
        if d.view is not None and now < d.view_until:
            return d.view
        circuit = self._advance(d, now)
        attempts, failures = self._counts(d, now)
        wait = max(0.0, d.open_until - now) if circuit == "open" else 0.0
        rate = failures / attempts if attempts > 0 else 0.0
        busy = d.inflight + d.others_inflight
        d.view = DeploymentState(
            circuit=circuit, retry_in=wait, inflight=busy, ttft_ms=d.ttft_ms, latency_ms=d.latency_ms, error_rate=rate
        )
        d.view_until = now if circuit == "open" else now + VIEW_TTL  # retry_in moves while open
        return d.view

    def _advance(self, d: _Deployment, now: float) -> Circuit:
        """Apply the transitions that time alone makes (none to a closed circuit)."""
        circuit = d.circuit
        if circuit == "closed":
            return circuit
        if circuit == "open" and now >= d.open_until:
            self._move(d, "half_open")
            self._grant(d, now)
        elif circuit == "half_open" and d.permits <= 0 and now - d.permits_at >= self.settings.open_seconds:
            self._grant(d, now)  # the probes never reported: let new ones through
        return d.circuit

    def _grant(self, d: _Deployment, now: float) -> None:
        d.permits, d.permits_at = math.ceil(self.settings.half_open_probes / self._replicas), now

    def _counts(self, d: _Deployment, now: float) -> tuple[float, float]:
        if self._attached:  # the fleet's counts at the last merge, plus what this replica saw since
            return d.base_attempts + d.pending.successes + d.pending.failures, d.base_failures + d.pending.failures
        return d.window.counts(now, self.settings.window_seconds)

    def _tripped(self, d: _Deployment, now: float) -> bool:
        s, (attempts, failures) = self.settings, self._counts(d, now)
        too_many = attempts >= s.min_requests and failures > s.error_rate_threshold * attempts
        return d.consecutive >= s.failure_threshold or too_many

    def _move(self, d: _Deployment, circuit: Circuit) -> None:
        if circuit != d.circuit:
            d.circuit = circuit
            if self._on_change is not None:
                self._on_change(d.name, circuit)

    def _open(self, d: _Deployment, now: float) -> None:
        self._move(d, "open")
        d.open_until, d.permits = now + self.settings.open_seconds, 0
        d.pending.event = "open"

    def _close(self, d: _Deployment) -> None:
        """Close and forget the failures that opened it (the script does the same on the "close" event)."""
        self._move(d, "closed")
        d.permits, d.consecutive = 0, 0
        d.base_attempts = d.base_failures = 0.0
        d.window = _Window()
        p = d.pending
        p.successes = p.failures = p.trailing_failures = 0
        p.reset, p.event = True, "close"

    def _follow(self, d: _Deployment, r: RemoteState, now: float) -> None:
        """Take the fleet's circuit (its counts were already taken by ``merge``)."""
        if r.circuit == "closed":
            if d.circuit != "closed":
                self._move(d, "closed")
                d.permits = 0
                d.window = _Window()  # the failures that opened it must not re-open it if Redis goes away
        elif r.circuit == "open":
            self._move(d, "open")
            d.open_until, d.permits = now + r.retry_in, 0
        elif d.circuit != "half_open":
            self._move(d, "half_open")
            self._grant(d, now)

    def _sample(self, d: _Deployment, latency_s: float, ttft_s: float | None) -> None:
        a, p, ms = self.settings.ewma_alpha, d.pending, latency_s * 1000.0
        d.latency_ms = ewma(d.latency_ms, ms, a)
        p.latency_ms_sum, p.latency_count = p.latency_ms_sum + ms, p.latency_count + 1
        if ttft_s is not None:
            ms = ttft_s * 1000.0
            d.ttft_ms = ewma(d.ttft_ms, ms, a)
            p.ttft_ms_sum, p.ttft_count = p.ttft_ms_sum + ms, p.ttft_count + 1


def ewma(average: float | None, sample: float, alpha: float) -> float:
    """The first sample starts it: ``ewma(ewma(None, 100.0, 0.2), 200.0, 0.2) == 120.0``."""
    return sample if average is None else average + alpha * (sample - average)
