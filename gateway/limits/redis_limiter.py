"""Token buckets shared by every replica through Redis: each operation is one EVALSHA round trip."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import bounded_seconds
from gateway.limits.decide import (
    ALERTS,
    MAX_COOLDOWN_SECONDS,
    budget_refunds,
    refunds,
    reserved,
    skipped,
    state,
)
from gateway.limits.model import Admission, BucketSpec, Budget, Candidate, Reservation, Strategy
from gateway.state.pipe import Pipe
from gateway.state.store import KeyLayout, RedisClient, Scripts

Args = list[str | bytes | float | int]
_ALERTS: Args = [len(ALERTS), *ALERTS]
# A budget's counter in Redis: its spend (USD) and the alert level it reached, packed (``admit_v7.lua``).
_COUNTER = struct.Struct("<dB")
MAX_ENCODED = 4096  # budget sequences whose encoded arguments are kept (one per key, end user and tier in use)


class RedisLimiter:
    mode = "redis"

    def __init__(
        self, client: RedisClient, prefix: str = "llmgw", *, scripts: Scripts | None = None, pipe: Pipe | None = None
    ) -> None:
        self.client = client
        self.pipe = pipe  # the lean connection for admissions, when the URL allows one
        self.keys = KeyLayout(prefix)
        self.scripts = scripts or Scripts(client)
        self.round_trips = 0  # EVALSHA calls made; admit and settle are one each
        # When set (the resilient limiter does): Redis's clock minus ours, and how long a caller waits for an
        # admission; a call Redis runs later than that does nothing (``admit_v7.lua``).
        self.offset: float | None = None
        self.patience = 0.0
        self._encoded: dict[int, tuple[Sequence[Budget], EncodedBudgets]] = {}  # id -> (the budgets, encoded)
        # Each provider bucket as this replica's latest admission through it left it, or 0 when one found it
        # full: (the bucket, its level, time.monotonic() then). Where local shares start if Redis goes away.
        self.seen: dict[str, tuple[BucketSpec, float, float]] = {}

    async def admit(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission:
        stale = time.time() + self.offset + self.patience if self.offset is not None and self.patience else 0.0
        encoded = self._encode(budgets) if budgets else _NO_BUDGETS
        keys, args = encode_admit(self.keys, candidates, quotas, strategy, budgets, stale, encoded)
        packed = orjson.dumps(args)
        if self.pipe is not None:
            self.round_trips += 1
            reply = await self.scripts.run_on(self.pipe, "admit_v7", keys, packed)
        else:
            reply = await self._call("admit_v7", keys, [packed])
        if len(reply) == 1:  # stale: it ran after this process had stopped waiting (it charged nothing)
            raise TimeoutError("the admission reached Redis after its deadline")
        # Integers arrive as ints (chosen, blocked, over, indexes), other numbers as strings (the script says).
        chosen, retry_after, blocked, skips, levels, over, amounts, alerts, left = reply
        spent: tuple[float, ...] = ()
        took: tuple[float, ...] = ()
        if budgets:  # each budget's spend after the decision, then what it took: one unpack
            both = encoded.amounts.unpack(amounts)
            spent, took = both[: len(budgets)], both[len(budgets) :]
        if left or skips:
            self._saw(candidates, chosen, left, skips)
        reservation = None
        if chosen >= 0:
            charged = tuple(zip(budgets, took, strict=False)) if budgets else ()  # as many: one of each per budget
            reservation = Reservation(reserved((*candidates[chosen].buckets, *quotas)), charged)
        return Admission(
            None if chosen < 0 else chosen,
            float(retry_after),
            tuple([state(q, float(level)) for q, level in zip(quotas, levels, strict=True)]) if quotas else (),
            skipped(candidates, skips) if skips else (),
            reservation,
            blocked == 1,
            over - 1 if over else None,
            spent,
            tuple([(j - 1, before, level) for j, before, level in alerts]) if alerts else (),
        )

    def _saw(self, candidates: Sequence[Candidate], chosen: int, left: bytes, skips: list[list[int]]) -> None:
        """Note what an admission's answer told of the provider buckets: the chosen candidate's levels after
        the charge (``left``, packed doubles), and a full bucket for each candidate skipped for one."""
        now, seen = time.monotonic(), self.seen
        if left:
            buckets = candidates[chosen].buckets
            for bucket, level in zip(buckets, struct.unpack(f"<{len(buckets)}d", left), strict=True):
                seen[bucket.name] = (bucket, level, now)
        for i, code in skips:
            if code > 0:  # COOLDOWN is negative
                bucket = candidates[i].buckets[code - 1]
                seen[bucket.name] = (bucket, 0.0, now)

    def _encode(self, budgets: Sequence[Budget]) -> EncodedBudgets:
        """``encode_budgets`` for ``budgets``, kept while callers pass the same sequence again (``Books.touched``
        hands out one tuple per key, end user and tier for the day), so a request does not rebuild it."""
        if type(budgets) is not tuple:  # a list may change between calls: encoded afresh
            return encode_budgets(self.keys, budgets)
        found = self._encoded.get(id(budgets))
        if found is not None and found[0] is budgets:
            return found[1]
        if len(self._encoded) >= MAX_ENCODED:
            self._encoded.clear()
        encoded = encode_budgets(self.keys, budgets)
        self._encoded[id(budgets)] = (budgets, encoded)  # holds the sequence, so its id is not reused meanwhile
        return encoded

    async def settle(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> None:
        await self.apply(refunds(reservation, actual_tokens), budget_refunds(reservation, actual_tokens, actual_cost))

    async def apply(
        self,
        changes: Sequence[tuple[BucketSpec, float]],
        spend: Sequence[tuple[Budget, float]] = (),
        batch: tuple[str, int] | None = None,
    ) -> None:
        """Add each delta to its bucket (negative = charge), capped at capacity, and each amount to its
        budget's spend (never below 0): one round trip. ``batch`` (replica id, sequence number) makes a
        resent batch apply once (``settle_v3.lua``)."""
        if not changes and not spend:
            return
        replica, seq = batch or ("", 0)
        args: Args = [replica, seq, len(changes)]
        for bucket, delta in changes:
            args += [bucket.capacity, bucket.refill_per_sec, delta]
        args.append(len(spend))
        for budget, delta in spend:
            args += [delta, budget.expires_ms]
        keys = [self.keys.bucket(b.name) for b, _ in changes] + [self.keys.budget(b.counter) for b, _ in spend]
        await self._call("settle_v3", keys + [self.keys.applied], [orjson.dumps(args)])

    async def budget_spend(self, budgets: Sequence[Budget]) -> list[float]:
        """Spend per budget in its window (USD, reservations included), for admin views and tests."""
        if not budgets:
            return []
        stored = await self.client.mget([self.keys.budget(b.counter) for b in budgets])
        return [_COUNTER.unpack(v)[0] if isinstance(v, bytes) else 0.0 for v in stored]  # None: nothing spent

    async def cooldown(
        self, deployment_id: str, account: str | None, seconds: float, drain: Sequence[BucketSpec] = ()
    ) -> None:
        cooling = [self.keys.deployment_cooldown(deployment_id)]
        if account:
            cooling.append(self.keys.account_cooldown(account))
        args: Args = [len(cooling), math.ceil(bounded_seconds(seconds, MAX_COOLDOWN_SECONDS) * 1000)]
        for bucket in drain:
            args += [bucket.capacity, bucket.refill_per_sec]
        await self._call("cooldown_v2", cooling + [self.keys.bucket(b.name) for b in drain], args)

    async def cooldowns(self, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        keys: list[str] = []
        for i in ids:
            keys += [self.keys.deployment_cooldown(i), self.keys.account_cooldown(i.partition("/")[0])]
        left = await self._call("cooldowns_v1", keys, [])
        return {i: max(int(left[2 * n]), int(left[2 * n + 1])) / 1000 for n, i in enumerate(ids)}

    async def correct(self, bucket: BucketSpec, remaining: float) -> None:
        args: Args = [bucket.capacity, bucket.refill_per_sec, remaining]
        await self._call("correct_v2", [self.keys.bucket(bucket.name)], args)

    async def levels(self, buckets: Sequence[BucketSpec]) -> list[float]:
        """Current levels (negative = debt), for admin views and tests; not part of ``Limiter``."""
        if not buckets:
            return []
        args: Args = []
        for bucket in buckets:
            args += [bucket.capacity, bucket.refill_per_sec]
        reply = await self._call("levels_v2", [self.keys.bucket(b.name) for b in buckets], args)
        return [float(v) for v in reply]

    async def start(self) -> None:
        await self.scripts.load()

    async def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        await self.client.aclose()

    async def _call(self, script: str, keys: list[str], args: Args) -> Any:
        self.round_trips += 1
        return await self.scripts[script](keys=keys, args=args)


@dataclass(frozen=True, slots=True)
class EncodedBudgets:
    """Budgets as ``admit_v7.lua`` takes them, and how its answer about them is read (kept per tuple)."""

    keys: tuple[str, ...]
    args: tuple[str | float | int, ...]  # the count, then (cap, expiry) each
    amounts: struct.Struct  # the answer's spend after, then what each took: 2 x n doubles


def encode_budgets(layout: KeyLayout, budgets: Sequence[Budget]) -> EncodedBudgets:
    """The budgets' keys and their part of the arguments, the expiry as the decimal string Redis takes (the
    script never formats it)."""
    args: list[str | float | int] = [len(budgets)]
    for budget in budgets:
        args += [budget.cap, str(budget.expires_ms)]
    keys = tuple([layout.budget(b.counter) for b in budgets])
    return EncodedBudgets(keys, tuple(args), struct.Struct(f"<{2 * len(budgets)}d"))


_NO_BUDGETS = EncodedBudgets((), (0,), struct.Struct("<"))


def encode_admit(
    layout: KeyLayout,
    candidates: Sequence[Candidate],
    quotas: Sequence[BucketSpec],
    strategy: Strategy,
    budgets: Sequence[Budget] = (),
    stale: float = 0.0,
    encoded: EncodedBudgets | None = None,
) -> tuple[list[str], Args]:
    """KEYS and the arguments for ``admit_v7.lua``, sent as one JSON array in one ARGV (the protocol is
    described at the top of the script). ``encoded``: ``encode_budgets(layout, budgets)``, when the caller
    keeps it.

    One pass, every bucket named where it is used (the script finds an account's buckets that several
    candidates share), the keys from the layout's memos: this runs for every request.
    """
    bucket_keys = layout.buckets
    keys = [bucket_keys[b.name] for b in quotas]
    args: Args = [strategy, len(quotas)]
    for b in quotas:
        args += (b.capacity, b.refill_per_sec, b.cost)
    args.append(len(candidates))
    for c in candidates:
        keys += (layout.deployment_cooldowns[c.id], layout.account_cooldowns[c.account])
        args += (c.usd, len(c.buckets))
        for b in c.buckets:
            keys.append(bucket_keys[b.name])
            args += (b.capacity, b.refill_per_sec, b.cost)
    encoded = encoded or encode_budgets(layout, budgets)
    keys += encoded.keys
    args += encoded.args
    args += _ALERTS
    args.append(stale)
    return keys, args
