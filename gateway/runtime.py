"""Everything a request needs, built once in the app lifespan and kept on ``app.state.runtime``: the
request path's steps, the limiter, the circuit breaker, the policy store, metrics, the log (and its
lifecycle events) and, when configured, the tracer; off the request path, the headroom sampler."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway import accesslog, compiled
from gateway.auth import KeyRing
from gateway.config.model import Deployment, Settings
from gateway.limits import Limiter, LocalLimiter, ResilientLimiter, WorkerShare, build_limiter, specs
from gateway.limits.model import BucketSpec
from gateway.limits.queue import WaitLine
from gateway.limits.share import scaled
from gateway.metrics import Metrics
from gateway.providers import REGISTRY
from gateway.providers.base import Provider
from gateway.routing.admission import Admitter
from gateway.routing.health import Health
from gateway.routing.health_sync import HealthSync
from gateway.routing.outcomes import Recorder
from gateway.routing.reload import PolicyStore
from gateway.routing.resolve import ModelIndex
from gateway.routing.sending import Sender, Target
from gateway.routing.snapshot import Circuit
from gateway.routing.steps import Steps
from gateway.spend.books import Books, build_books
from gateway.upstream import Upstream

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is configured
    from gateway.tracing import Tracer

# Lifecycle events for circuit transitions (gateway.accesslog lists every event).
_CIRCUIT_EVENTS = {"open": ("circuit_opened", logging.WARNING), "half_open": ("circuit_half_open", logging.INFO)}


@dataclass
class Runtime:
    settings: Settings
    keys: KeyRing
    index: ModelIndex
    targets: dict[str, Target]
    upstream: Upstream
    metrics: Metrics
    log: logging.Logger
    secrets: tuple[str, ...]
    limiter: Limiter
    health: Health
    health_sync: HealthSync
    policies: PolicyStore
    deployments: dict[str, Deployment]
    books: Books  # spend and budgets: the ledger, the budget view, alerts
    tracer: Tracer | None = None  # None: tracing is off (observability.tracing.endpoint is empty)
    wait_line: WaitLine = field(default_factory=WaitLine)
    rng: random.Random = field(default_factory=random.Random)  # seeded from os.urandom: clients cannot steer it
    ready: bool = False
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    steps: Steps = field(init=False)  # the request path's admit, send and record, over the parts above
    _draining: bool = field(default=False, init=False)
    _sampler: asyncio.Task[None] | None = field(default=None, init=False)
    _started_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        accounts = {name: (t.account, t.provider) for name, t in self.targets.items()}
        limits = self.settings.limits
        recorder = Recorder(self.health, self.metrics, self.tracer)
        self.steps = Steps(
            admit=Admitter(self.limiter, self.wait_line, accounts, limits, self.metrics, self.spawn, self.books),
            send=Sender(self.upstream, self.targets, self.tracer),
            record=recorder,
            max_output_tokens=limits.max_output_tokens,
            watch=recorder,
        )

    @property
    def draining(self) -> bool:
        """True from SIGTERM/SIGINT on (``gateway.lifecycle``): /readyz answers 503."""
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        if value and not self._draining:
            server = self.settings.server
            accesslog.event(
                self.log,
                "shutdown",
                drain_delay_seconds=server.drain_delay_seconds,
                shutdown_grace_seconds=server.shutdown_grace_seconds,
            )
        self._draining = value

    @classmethod
    def build(cls, settings: Settings, registry: Mapping[str, Provider] = REGISTRY) -> Runtime:
        """Everything for ``settings``; ``registry`` is every provider kind there is (tests add their own)."""
        targets = {a.name: Target.of(a, registry[a.kind]) for a in settings.accounts}
        metrics = Metrics()
        log = accesslog.configure(
            settings.server.access_log, settings.server.access_log_queue, settings.secrets(), metrics.log_dropped.inc
        )

        replica_id = f"{os.uname().nodename}:{os.getpid()}"
        deployments = {d.id: d for d in settings.deployments}

        def on_circuit(deployment: str, circuit: Circuit) -> None:
            metrics.circuit_open.labels(deployment).set(0 if circuit == "closed" else 1)
            name, level = _CIRCUIT_EVENTS.get(circuit, ("circuit_closed", logging.INFO))
            accesslog.event(log, name, level, deployment=deployment)

        health = Health(settings.circuit, on_change=on_circuit)
        for deployment in deployments:
            metrics.circuit_open.labels(deployment).set(0)

        def on_limiter_mode(mode: str) -> None:  # the limiter logs the event itself (limiter_degraded, ...)
            metrics.limiter_degraded.set(1 if mode == "degraded" else 0)

        tracer = None
        tracing = settings.observability.tracing
        if tracing.endpoint:
            try:
                from gateway.tracing import Tracer
            except ImportError as e:
                raise RuntimeError(
                    "observability.tracing.endpoint is set but OpenTelemetry is not installed: "
                    f"pip install 'llm-gateway[tracing]' ({e})"
                ) from e
            tracer = Tracer.build(tracing, settings.accounts, replica_id, _version())

        return cls(
            settings=settings,
            keys=KeyRing(settings.keys, settings.admin_key_sha256),
            index=ModelIndex.build(settings),
            targets=targets,
            upstream=Upstream(
                settings.accounts, settings.server, metrics, settings.secrets(), settings.limits.max_retry_after_seconds
            ),
            metrics=metrics,
            log=log,
            secrets=settings.secrets(),
            limiter=build_limiter(
                settings.redis_url,
                replica_id=replica_id,
                deadline=settings.limits.redis_deadline_ms / 1000,
                fail_mode=settings.limits.fail_mode,
                prefix=settings.limits.key_prefix,
                on_mode_change=on_limiter_mode,
                workers=settings.server.workers,  # without Redis, each worker enforces its share
            ),
            health=health,
            health_sync=HealthSync(
                health,
                settings.redis_url,
                replica_id,
                prefix=settings.limits.key_prefix,
                deadline=settings.limits.redis_deadline_ms / 1000,
            ),
            policies=PolicyStore(settings.policy_dir, deployments, metrics, log, max_bytes=settings.policy_max_bytes),
            deployments=deployments,
            books=build_books(settings, metrics, log),
            tracer=tracer,
        )

    @property
    def limiter_mode(self) -> str:
        """Either "local" (no Redis configured), "redis", or "degraded" (Redis unreachable, local shares)."""
        return self.limiter.mode

    async def start(self) -> None:
        accesslog.adopt(self.log, "uvicorn.error")  # the server's own errors: JSON lines, redacted, never blocking
        # tiktoken's encoding is loaded in a thread when a prompt first needs counting (tokens.loaded), not here:
        # ~45 MB that a gateway whose prompts are all short never needs.
        await self.upstream.start()
        await self.limiter.start()
        await self.health_sync.start()
        await self.policies.start()
        self.metrics.limiter_degraded.set(1 if self.limiter.mode == "degraded" else 0)
        self._sampler = asyncio.ensure_future(self._sample_headroom())
        self._started_at = time.monotonic()
        self.ready = True
        server = self.settings.server
        accesslog.event(
            self.log,
            "start",
            version=_version(),
            pid=os.getpid(),
            host=server.host,
            port=server.port,
            workers=server.workers,
            limiter=self.limiter.mode,
            policy=self.policies.current.version,
            tracing=self.tracer is not None,
            sample_ratio=self.settings.observability.tracing.sample_ratio,
            code=compiled.status,
        )

    def spawn(self, work: Any) -> None:
        """Run ``work`` (a coroutine) after the response, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        self.ready = False
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self.background:
            await asyncio.wait(self.background, timeout=2)
        await self.policies.close()
        await self.health_sync.close()
        await self.books.close()  # the ledger's last rows
        await self.limiter.close()
        await self.upstream.close()
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.close)
        uptime = round(time.monotonic() - self._started_at, 3) if self._started_at else 0.0
        accesslog.event(self.log, "stopped", pid=os.getpid(), uptime_seconds=uptime)
        await asyncio.to_thread(accesslog.close, self.log)  # last: flush every line, including the above's

    async def _sample_headroom(self) -> None:
        """``gateway_bucket_headroom_ratio``, every ``observability.metrics.headroom_interval_seconds``, off the
        request path: one read of every deployment's buckets (one Redis round trip)."""
        buckets = {
            d.id: specs.candidate(self.targets[d.account].account, d, 0).buckets for d in self.deployments.values()
        }
        buckets = {deployment: found for deployment, found in buckets.items() if found}
        if not buckets:
            return
        interval = self.settings.observability.headroom_interval_seconds
        while True:
            try:
                ratios = await headroom(self.limiter, buckets)
            except Exception:  # Redis slow or gone: the limiter itself reports that; try again next time
                ratios = {}
            for deployment, ratio in ratios.items():
                self.metrics.headroom.labels(deployment).set(ratio)
            await asyncio.sleep(interval)


def _version() -> str:
    try:
        return importlib.metadata.version("llm-gateway")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def headroom(limiter: Limiter, buckets: Mapping[str, Sequence[BucketSpec]]) -> dict[str, float]:
    """Per deployment, the room left in its emptiest bucket (its account's and its own), 0 to 1: one read of
    every bucket (with Redis, one round trip). While Redis is unreachable, this replica's local shares: what
    admits requests then."""
    every = list({b.name: b for found in buckets.values() for b in found}.values())  # an account's, once
    if isinstance(limiter, ResilientLimiter) and limiter.mode == "redis":
        async with asyncio.timeout(1.0):
            levels, scale = await limiter.redis.levels(every), 1
    elif isinstance(limiter, ResilientLimiter):  # degraded: each limit divided by the live replicas
        n = limiter.divisor()
        levels, scale = await limiter.local.levels([scaled(b, n) for b in every]), n
    elif isinstance(limiter, WorkerShare):  # this worker's share of every bucket
        levels, scale = await limiter.levels(every), limiter.workers
    elif isinstance(limiter, LocalLimiter):
        levels, scale = await limiter.levels(every), 1
    else:
        return {}
    level = {b.name: value * scale / b.capacity for b, value in zip(every, levels, strict=True)}
    return {d: min(1.0, max(0.0, min(level[b.name] for b in found))) for d, found in buckets.items()}
