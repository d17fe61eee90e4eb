"""Deployment health shared by the replicas through Redis: one script call per sync interval, none per request.

Requests only touch the in-process ``gateway.routing.health.Health``. Every ``interval`` a background
task sends its ``deltas()`` in one ``health_sync_v1`` call, which adds them to the fleet's state and
returns the merged view of every deployment, fed back through ``Health.merge``. Keys (one hash tag, so
the call stays in one Cluster slot; each with a TTL):

- ``{prefix}:h:v1:deps``: hash deployment -> JSON state (circuit, opening time, window counts,
  consecutive failures, EWMAs); a deployment without news for ``retention`` seconds is dropped;
- ``{prefix}:h:v1:replicas``: zset replica -> last sync (Redis TIME); gone after ``replica_ttl``;
- ``{prefix}:h:v1:inflight``: hash replica -> JSON {deployment: in-flight}, dropped with its replica.

When Redis fails (or misses the deadline) the replica keeps deciding alone on its local state, retries
every interval, and logs once per outage. ``replica_id`` must be unique per process (uvicorn worker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.routing.health import Delta, Health, RemoteState
from gateway.state.store import REDIS_FAILURES, KeyLayout, RedisClient, build_client, script_text

log = logging.getLogger(__name__)

SCRIPT = "health_sync_v1"


def health_keys(layout: KeyLayout) -> list[str]:
    """KEYS of ``health_sync_v1``, versioned with it so rolling deploys never mix state formats.

    >>> health_keys(KeyLayout("llmgw"))
    ['{llmgw}:h:v1:deps', '{llmgw}:h:v1:replicas', '{llmgw}:h:v1:inflight']
    """
    return [f"{layout.tag}:h:v1:{name}" for name in ("deps", "replicas", "inflight")]


def encode(delta: Delta) -> dict[str, Any]:
    return {
        "s": delta.successes,
        "f": delta.failures,
        "t": delta.trailing_failures,
        "r": delta.reset,
        "e": delta.event or "",
        "ls": delta.latency_ms_sum,
        "ln": delta.latency_count,
        "ts": delta.ttft_ms_sum,
        "tn": delta.ttft_count,
    }


def decode(reply: bytes | str) -> tuple[dict[str, RemoteState], int]:
    """The script's answer: each deployment's merged state, and the number of live replicas."""
    answer = orjson.loads(reply)
    remote = {
        name: RemoteState(
            circuit=v["circuit"],
            retry_in=float(v["retry_in"]),
            attempts=float(v["attempts"]),
            failures=float(v["failures"]),
            consecutive=int(v["consecutive"]),
            inflight=int(v["inflight"]),
            ttft_ms=None if v.get("ttft") is None else float(v["ttft"]),
            latency_ms=None if v.get("lat") is None else float(v["lat"]),
        )
        for name, v in answer["deps"].items()
    }
    return remote, int(answer["replicas"])


class HealthSync:
    """Keeps one ``Health`` in step with the fleet; with ``redis_url`` "" it does nothing (one replica)."""

    def __init__(
        self,
        health: Health,
        redis_url: str,
        replica_id: str,
        *,
        prefix: str = "llmgw",
        interval: float = 0.25,
        deadline: float = 0.05,
        replica_ttl: float | None = None,
    ) -> None:
        self.health = health
        self.replica_id = replica_id
        self.interval = interval
        self.deadline = deadline
        # Long enough that a replica busy for a moment keeps its in-flight counts in the sum.
        self.replica_ttl = replica_ttl if replica_ttl is not None else max(2.0, 8 * interval)
        self.keys = health_keys(KeyLayout(prefix))
        self.round_trips = 0  # script calls made (each is one round trip once the script is cached)
        self.connected = True  # False from a failed sync to the next good one
        self._client: RedisClient | None = build_client(redis_url) if redis_url else None
        self._script = self._client.register_script(script_text(SCRIPT)) if self._client is not None else None
        self._lock = asyncio.Lock()  # one sync at a time: deltas must be merged in the order they were taken
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """A first sync (bounded by ``deadline``, failing quietly), then the background task."""
        if self._client is None:
            return
        await self.sync_now()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        # Also ends the loop when the cancellation is lost: Python 3.11's asyncio.wait_for, which redis-py
        # awaits when writing, swallows a cancellation that arrives as the write completes.
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})  # unlike awaiting it, a cancellation of close() itself propagates
            self._task = None
        if self._client is not None:
            if self.connected:
                await self.sync_now()  # the last outcomes and in-flight counts
            await self._client.aclose()

    async def sync_now(self) -> None:
        """One round trip: send this replica's deltas, merge the fleet's view. Never raises for Redis."""
        if self._script is None:
            return
        async with self._lock:
            deltas = self.health.deltas()
            try:
                async with asyncio.timeout(self.deadline):
                    self.round_trips += 1
                    reply = await self._script(keys=self.keys, args=self._args(deltas))
            except REDIS_FAILURES as error:
                self.health.restore(deltas)
                self.health.detach()
                self._disconnected(error)
                return
            remote, replicas = decode(reply)
            self.health.merge(remote, replicas=replicas)
            if not self.connected:
                self.connected = True
                log.warning("deployment health of replica %s is shared through Redis again", self.replica_id)

    def _args(self, deltas: Mapping[str, Delta]) -> list[str | float | bytes]:
        s = self.health.settings
        retention = 2 * (s.window_seconds + s.open_seconds)  # longer than any state stays meaningful
        inflight = {name: d.inflight for name, d in deltas.items() if d.inflight > 0}
        return [
            self.replica_id,
            s.failure_threshold,
            s.error_rate_threshold,
            s.min_requests,
            s.window_seconds,
            s.open_seconds,
            s.ewma_alpha,
            self.replica_ttl,
            retention,
            orjson.dumps({name: encode(d) for name, d in deltas.items()}),
            orjson.dumps(inflight),
        ]

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.interval)
            try:
                await self.sync_now()
            except Exception:  # a bug must not stop the syncs for good
                log.exception("deployment health sync failed")

    def _disconnected(self, error: BaseException) -> None:
        if self.connected:
            self.connected = False
            log.warning("deployment health is local to replica %s: Redis failed (%r); retrying", self.replica_id, error)
