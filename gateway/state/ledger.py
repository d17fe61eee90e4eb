"""The spend ledger in Redis: one sorted set per window and table, written in batches by ``ledger_v1.lua``.

A table is what the spend is broken down by (``key:usd``, ``tier:n``, ``user:<key name>:usd``...; the
spend package names them); a member is one key, tier, deployment, route or end user; a score is USD or
requests. Every set of a window expires together, at the expiry the writer gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import orjson

from gateway.state.store import KeyLayout, RedisClient, Scripts

Increment = tuple[str, str, str, float]  # (window, table, member, amount)


class RedisLedger:
    def __init__(self, client: RedisClient, scripts: Scripts, keys: KeyLayout) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys

    async def add(self, increments: Sequence[Increment], expiries: Mapping[str, float]) -> None:
        """Add every increment, and set each window's expiry (Unix seconds): one round trip."""
        if not increments:
            return
        index: dict[str, int] = {}
        keys: list[str] = []
        head: list[str | float | int] = []  # each set's expiry, in the order of ``keys``
        rows: list[str | float | int] = []
        for window, table, member, amount in increments:
            key = self._keys.spend(window, table)
            if key not in index:
                index[key] = len(keys) + 1
                keys.append(key)
                head.append(int(expiries[window] * 1000))
            rows += [index[key], member, amount]
        head.insert(0, len(keys))
        await self._scripts["ledger_v1"](keys=keys, args=[orjson.dumps(head + rows)])

    async def tables(self, window: str, names: Sequence[str]) -> list[dict[str, float]]:
        """Whole tables of one window (member -> score): one round trip."""
        if not names:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrange(self._keys.spend(window, name), 0, -1, withscores=True)
            replies = await pipe.execute()
        return [{_text(m): float(s) for m, s in reply} for reply in replies]

    async def top(self, window: str, name: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` members of one table with the highest scores, highest first."""
        reply = await self._client.zrevrange(self._keys.spend(window, name), 0, max(0, n - 1), withscores=True)
        return [(_text(pair[0]), float(pair[1])) for pair in cast(list[tuple[bytes, float]], reply)]

    async def scores(self, window: str, name: str, members: Sequence[str]) -> list[float]:
        """Each member's score in one table (0 for one that has none)."""
        if not members:
            return []
        reply = await self._client.zmscore(self._keys.spend(window, name), list(members))
        return [0.0 if s is None else float(s) for s in reply]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
