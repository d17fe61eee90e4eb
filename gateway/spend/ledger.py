"""The spend ledger: what every priced request cost, by key, tier, deployment, route and end user, per UTC
day and month.

Requests add to a table in memory (``add``, no I/O); a background flush writes what accumulated in one
Redis script call every ``interval`` (``state.ledger``), as the limiter batches its reconciliations, so
under load many requests share a write. Without Redis the tables live in this process (``MemoryTables``).
A flush that fails (Redis away) puts its rows back for the next one: spend is never lost while the process
lives. Rows for end users are bounded (``MAX_PENDING``); beyond, new end users of a key are counted under
``(other)`` until the next flush succeeds.

Tables per window (members, and ``:usd`` or ``:n`` for requests): ``key``, ``tier``, ``deployment``,
``route``, ``user:<key name>`` (the key's end users, as routing identifies them), ``users`` (``<key name>
<US> <end user>``, for the top end users across keys) and ``unpriced:n`` (deployments whose price is
unknown: counted, never taken for free). Day windows are kept ``DAY_KEPT`` after they end, months
``MONTH_KEPT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from gateway.spend import windows
from gateway.state.store import REDIS_FAILURES

log = logging.getLogger(__name__)

DAY_KEPT = 62 * windows.DAY
MONTH_KEPT = 400 * windows.DAY
MAX_PENDING = 50_000
SEP = "\x1f"  # between a key's name and an end user's id in the ``users`` table
OTHER = "(other)"
MAX_ID = 64  # longer end-user ids are stored shortened, with a digest that keeps them apart
WRITE_TIMEOUT = 2.0  # seconds for one flush: off every request's path, but never stuck

Increment = tuple[str, str, str, float]  # (window, table, member, amount)


class Tables(Protocol):
    """Where the ledger's tables are kept: Redis (``state.ledger.RedisLedger``) or this process."""

    async def add(self, increments: Sequence[Increment], expiries: Mapping[str, float]) -> None: ...

    async def tables(self, window: str, names: Sequence[str]) -> list[dict[str, float]]: ...

    async def top(self, window: str, name: str, n: int) -> list[tuple[str, float]]: ...

    async def scores(self, window: str, name: str, members: Sequence[str]) -> list[float]: ...


class MemoryTables:
    """The tables in this process (no Redis configured), expired as Redis would."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], dict[str, float]] = {}
        self._expiries: dict[str, float] = {}

    async def add(self, increments: Sequence[Increment], expiries: Mapping[str, float]) -> None:
        self.expire(time.time())
        for window, table, member, amount in increments:
            rows = self._tables.setdefault((window, table), {})
            rows[member] = rows.get(member, 0.0) + amount
        self._expiries.update(expiries)

    def expire(self, now: float) -> None:
        gone = {w for w, at in self._expiries.items() if at <= now}
        if gone:
            self._tables = {k: v for k, v in self._tables.items() if k[0] not in gone}
            self._expiries = {w: at for w, at in self._expiries.items() if w not in gone}

    async def tables(self, window: str, names: Sequence[str]) -> list[dict[str, float]]:
        return [dict(self._tables.get((window, name), {})) for name in names]

    async def top(self, window: str, name: str, n: int) -> list[tuple[str, float]]:
        rows = self._tables.get((window, name), {})
        return sorted(rows.items(), key=lambda item: (-item[1], item[0]))[: max(0, n)]

    async def scores(self, window: str, name: str, members: Sequence[str]) -> list[float]:
        rows = self._tables.get((window, name), {})
        return [rows.get(m, 0.0) for m in members]


class Entry(NamedTuple):
    """One priced request, as the ledger records it. ``Ledger.add`` takes any tuple of these fields in this
    order: the books pass a plain one (a NamedTuple's constructor is a Python call, made for every request)."""

    key: str
    tier: str
    end_user: str | None
    deployment: str
    route: str
    usd: float | None  # None: the deployment has no price


EntryFields = tuple[str, str, str | None, str, str, float | None]  # an Entry's fields, in its order


def end_user_id(end_user: str) -> str:
    """The id as stored: as sent, unless longer than ``MAX_ID`` characters.

    >>> end_user_id("alice"), len(end_user_id("x" * 500))
    ('alice', 64)
    """
    if len(end_user) <= MAX_ID:
        return end_user
    return end_user[: MAX_ID - 17] + "~" + hashlib.sha256(end_user.encode()).hexdigest()[:16]


def expiry(window: str) -> float:
    """When a window's tables expire (Unix time).

    >>> windows.iso(expiry("2026-12-01")), windows.iso(expiry("2026-12"))
    ('2027-02-02T00:00:00Z', '2028-02-05T00:00:00Z')
    """
    period = windows.period_of(window) or "day"
    return windows.ends(period, windows.start_of(window)) + (DAY_KEPT if period == "day" else MONTH_KEPT)


Row = tuple[tuple[str, ...], str, str, str | None, str, str, bool]  # (windows, key, tier, end user, deployment,
# route, priced): what requests alike add to, kept as one row until the flush spreads it over the tables


class Ledger:
    def __init__(
        self,
        tables: Tables | None = None,
        interval: float = 0.25,
        max_pending: int = MAX_PENDING,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.tables: Tables = tables or MemoryTables()
        self._close = close  # releases what the tables hold (a Redis client)
        self.interval = interval
        self._max_pending = max_pending
        self._pending: dict[Row, list[float]] = {}  # row -> [USD, requests]
        self._flusher: asyncio.Task[None] | None = None
        self._failing = False  # the last flush failed (logged once per run of failures)
        self._expiry_of: dict[str, float] = {}  # window -> when its tables expire (parsing a date is slow)

    def add(self, entry: EntryFields, cal_windows: tuple[str, ...]) -> None:
        """Count one request in each window (``cal_windows``: its day and its month): one dict update, no I/O."""
        key, tier, user, deployment, route, usd = entry
        if user is not None and len(self._pending) >= self._max_pending:
            user = OTHER
        row = (cal_windows, key, tier, user, deployment, route, usd is not None)
        found = self._pending.get(row)
        if found is None:
            self._pending[row] = [usd or 0.0, 1.0]
        else:
            found[0] += usd or 0.0
            found[1] += 1.0
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        while True:  # until nothing is left: after a failure, the spend waits for Redis, not for traffic
            await asyncio.sleep(self.interval * (4 if self._failing else 1))
            await self.flush()
            if not self._pending:
                return

    async def flush(self) -> None:
        """Write what accumulated (one round trip to Redis); on failure it stays queued for the next flush."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        increments = spread(pending)
        known = self._expiry_of
        if len(known) > 64:  # a handful of windows a day; more only from a clock that jumped around
            known.clear()
        expiries = {}
        for window in {w for w, _, _, _ in increments}:
            if window not in known:
                known[window] = expiry(window)
            expiries[window] = known[window]
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.tables.add(increments, expiries)
        except BaseException as error:  # Redis away (or shutdown mid-write): keep the spend for later
            self._requeue(pending)
            if not isinstance(error, REDIS_FAILURES):
                raise
            if not self._failing:
                log.warning("spend ledger write failed; kept for the next flush", {"error": repr(error)})
            self._failing = True
            return
        if self._failing:
            log.warning("spend ledger writes are back")
            self._failing = False

    def _requeue(self, pending: dict[Row, list[float]]) -> None:
        for row, (usd, n) in pending.items():
            found = self._pending.setdefault(row, [0.0, 0.0])
            found[0] += usd
            found[1] += n

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        if self._close is not None:
            await self._close()


def spread(pending: Mapping[Row, list[float]]) -> list[Increment]:
    """Rows of requests over the ledger's tables: the increments one flush writes (summed per cell)."""
    cells: dict[tuple[str, str, str], float] = {}

    def count(window: str, table: str, member: str, usd: float, n: float) -> None:
        for cell, amount in (((window, f"{table}:usd", member), usd), ((window, f"{table}:n", member), n)):
            cells[cell] = cells.get(cell, 0.0) + amount

    for (cal_windows, key, tier, user, deployment, route, priced), (usd, n) in pending.items():
        for window in cal_windows:
            for table, member in (("key", key), ("tier", tier), ("deployment", deployment), ("route", route)):
                count(window, table, member, usd, n)
            if user is not None:
                stored = user if user == OTHER else end_user_id(user)
                count(window, f"user:{key}", stored, usd, n)
                count(window, "users", f"{key}{SEP}{stored}", usd, n)
            if not priced:
                cells[(window, "unpriced:n", deployment)] = cells.get((window, "unpriced:n", deployment), 0.0) + n
    return [(w, t, m, amount) for (w, t, m), amount in cells.items()]
