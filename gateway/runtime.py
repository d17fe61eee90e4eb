"""Everything a request needs, built once in the app lifespan and kept on ``app.state.runtime``."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway import accesslog, tokens
from gateway.auth import KeyRing
from gateway.config.model import Deployment, Settings
from gateway.limits import Limiter, build_limiter
from gateway.limits.queue import WaitLine
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
from gateway.routing.walk import Steps
from gateway.upstream import Upstream


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
    wait_line: WaitLine = field(default_factory=WaitLine)
    rng: random.Random = field(default_factory=random.Random)  # seeded from os.urandom: clients cannot steer it
    draining: bool = False
    ready: bool = False
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    steps: Steps = field(init=False)  # the request path's admit, send and record, over the parts above

    def __post_init__(self) -> None:
        accounts = {name: (t.account, t.provider) for name, t in self.targets.items()}
        limits = self.settings.limits
        self.steps = Steps(
            admit=Admitter(self.limiter, self.wait_line, accounts, limits, self.metrics, self.spawn),
            send=Sender(self.upstream, self.targets),
            record=Recorder(self.health, self.metrics),
            max_output_tokens=limits.max_output_tokens,
        )

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
            log.warning("circuit", {"deployment": deployment, "circuit": circuit})

        health = Health(settings.circuit, on_change=on_circuit)
        for deployment in deployments:
            metrics.circuit_open.labels(deployment).set(0)

        def on_limiter_mode(mode: str) -> None:
            metrics.limiter_degraded.set(1 if mode == "degraded" else 0)
            log.warning("rate limiter mode", {"mode": mode})

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
        )

    @property
    def limiter_mode(self) -> str:
        """Either "local" (no Redis configured), "redis", or "degraded" (Redis unreachable, local shares)."""
        return self.limiter.mode

    async def start(self) -> None:
        accesslog.adopt(self.log, "uvicorn.error")  # the server's own errors: JSON lines, redacted, never blocking
        # tiktoken's encoding takes 0.2 s or more to load: in a thread, alongside the rest, never in a request.
        loading = asyncio.ensure_future(asyncio.to_thread(tokens.encoding))
        try:
            await self.upstream.start()
            await self.limiter.start()
            await self.health_sync.start()
            await self.policies.start()
        finally:
            await loading
        self.metrics.limiter_degraded.set(1 if self.limiter.mode == "degraded" else 0)
        self.ready = True

    def spawn(self, work: Any) -> None:
        """Run ``work`` (a coroutine) after the response, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        self.ready = False
        if self.background:
            await asyncio.wait(self.background, timeout=2)
        await self.policies.close()
        await self.health_sync.close()
        await self.limiter.close()
        await self.upstream.close()
        await asyncio.to_thread(accesslog.close, self.log)  # last: flush every line, including the above's
