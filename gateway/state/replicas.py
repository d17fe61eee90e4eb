"""Which replicas are alive: a heartbeat in a Redis sorted set, so a degraded replica knows its share.

Each replica records ``id -> Redis TIME`` every ``interval`` seconds; a replica is live when it was seen
within three heartbeats. The last count is kept for when Redis is unreachable (never below 1). Each
heartbeat also measures how far this host's clock is from Redis's (``offset``), from a quick round trip.
"""

from __future__ import annotations

import time

from gateway.state.store import KeyLayout, RedisClient, Scripts

HEARTBEATS_TO_LIVE = 3
QUICK = 0.05  # seconds: a heartbeat slower than this says too little about the clocks


class ReplicaRegistry:
    def __init__(
        self, client: RedisClient, scripts: Scripts, keys: KeyLayout, replica_id: str, interval: float = 2.0
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._key = keys.replicas
        self.replica_id = replica_id
        self.interval = interval
        self._live = 1
        self.offset: float | None = None  # Redis TIME minus this host's time, once measured

    @property
    def live(self) -> int:
        """Live replicas, this one included, as of the last heartbeat that reached Redis."""
        return self._live

    async def beat(self) -> int:
        window = self.interval * HEARTBEATS_TO_LIVE
        sent = time.time()
        count, seconds, micros = await self._scripts["heartbeat_v2"](keys=[self._key], args=[self.replica_id, window])
        answered = time.time()
        if answered - sent < QUICK:  # the reply's TIME was read about halfway through the round trip
            self.offset = int(seconds) + int(micros) / 1e6 - (sent + answered) / 2
        self._live = max(1, int(count))
        return self._live

    async def leave(self) -> None:
        """Deregister at shutdown, so the others' share grows at once rather than after the window."""
        await self._client.zrem(self._key, self.replica_id)
