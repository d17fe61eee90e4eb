"""Everything a request needs, built once in the app lifespan and kept on ``app.state.runtime``."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway import accesslog
from gateway.auth import KeyRing
from gateway.config.model import Account, Deployment, Settings
from gateway.limits import Limiter, build_limiter
from gateway.limits.health_store import HealthSync
from gateway.limits.model import BucketSpec
from gateway.limits.queue import WaitLine
from gateway.metrics import Metrics
from gateway.providers import REGISTRY
from gateway.providers.base import Provider
from gateway.routing import tokens
from gateway.routing.health import Health
from gateway.routing.reload import PolicyStore
from gateway.routing.resolve import ModelIndex
from gateway.routing.snapshot import Circuit
from gateway.upstream import Upstream


@dataclass(frozen=True)
class Target:
    """An account with what sending to it needs, resolved once: adapter and fixed headers."""

    account: Account
    provider: Provider
    headers: MappingProxyType[str, str]


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

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        targets = {}
        for account in settings.accounts:
            provider = REGISTRY[account.kind]
            headers = {"content-type": "application/json", **provider.auth(account.api_key)}
            targets[account.name] = Target(account, provider, MappingProxyType(headers))
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

    def correct_soon(self, bucket: BucketSpec, remaining: float) -> None:
        self.spawn(self.limiter.correct(bucket, remaining))

    async def close(self) -> None:
        self.ready = False
        if self.background:
            await asyncio.wait(self.background, timeout=2)
        await self.policies.close()
        await self.health_sync.close()
        await self.limiter.close()
        await self.upstream.close()
        await asyncio.to_thread(accesslog.close, self.log)  # last: flush every line, including the above's
