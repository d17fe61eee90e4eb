"""Waiting for provider capacity, in arrival order.

When no candidate has room, a request may wait up to ``limits.queue_timeout_seconds``. Waiters for
the same model line up behind one lock (asyncio locks wake waiters first-in, first-out), and a new
arrival joins the line rather than trying to jump it while anyone is waiting. The order is per
replica; across replicas the shared buckets arbitrate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WaitLine:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    def busy(self, group: str) -> bool:
        return self._waiting.get(group, 0) > 0

    @asynccontextmanager
    async def turn(self, group: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(group, asyncio.Lock())
        self._waiting[group] = self._waiting.get(group, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[group] -= 1
            if not self._waiting[group]:
                del self._waiting[group]
                del self._locks[group]
