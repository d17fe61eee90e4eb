"""Token buckets shared by every replica through Redis: each operation is one EVALSHA round trip."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.errors import bounded_seconds
from gateway.limits.decide import MAX_COOLDOWN_SECONDS, refunds, reserved, skipped, state
from gateway.limits.model import Admission, BucketSpec, Candidate, Reservation, Strategy
from gateway.state.pipe import Pipe
from gateway.state.store import KeyLayout, RedisClient, Scripts

Args = list[str | bytes | float | int]


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

    async def admit(
        self, candidates: Sequence[Candidate], quotas: Sequence[BucketSpec], strategy: Strategy = "first"
    ) -> Admission:
        keys, args = encode_admit(self.keys, candidates, quotas, strategy)
        packed = orjson.dumps(args)
        if self.pipe is not None:
            reply = await self._fast("admit_v4", keys, packed)
        else:
            reply = await self._call("admit_v4", keys, [packed])
        chosen, retry_after, blocked, skips, levels = reply
        picked = None if int(chosen) < 0 else int(chosen)
        reservation = None
        if picked is not None:
            reservation = Reservation(reserved((*candidates[picked].buckets, *quotas)))
        return Admission(
            chosen=picked,
            retry_after=float(retry_after),
            quota=tuple(state(q, float(level)) for q, level in zip(quotas, levels, strict=True)),
            skipped=skipped(candidates, [(int(i), int(code)) for i, code in skips]) if skips else (),
            reservation=reservation,
            blocked_by_quota=bool(blocked),
        )

    async def settle(self, reservation: Reservation, actual_tokens: int | None) -> None:
        await self.apply(refunds(reservation, actual_tokens))

    async def apply(self, changes: Sequence[tuple[BucketSpec, float]]) -> None:
        """Add each delta to its bucket (negative = charge), capped at capacity: one round trip."""
        if not changes:
            return
        args: Args = []
        for bucket, delta in changes:
            args += [bucket.capacity, bucket.refill_per_sec, delta]
        await self._call("settle_v2", [self.keys.bucket(b.name) for b, _ in changes], args)

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

    async def _fast(self, name: str, keys: list[str], packed: bytes) -> Any:
        assert self.pipe is not None
        self.round_trips += 1
        return await self.scripts.run_on(self.pipe, name, keys, packed)

    async def _call(self, script: str, keys: list[str], args: Args) -> Any:
        self.round_trips += 1
        return await self.scripts[script](keys=keys, args=args)


def encode_admit(
    layout: KeyLayout, candidates: Sequence[Candidate], quotas: Sequence[BucketSpec], strategy: Strategy
) -> tuple[list[str], Args]:
    """KEYS and the arguments for ``admit_v4.lua``, sent as one JSON array in one ARGV (the protocol is
    described at the top of the script).

    Buckets and cooldowns shared by several candidates (one account's limits) are passed once.
    """
    buckets: dict[str, int] = {}
    specs: list[BucketSpec] = []
    cooling: dict[str, int] = {}

    def bucket(spec: BucketSpec) -> int:
        if spec.name not in buckets:
            buckets[spec.name] = len(buckets) + 1
            specs.append(spec)
        return buckets[spec.name]

    def cooldown(key: str) -> int:
        return cooling.setdefault(key, len(cooling) + 1)

    tail: Args = [len(quotas)]
    for q in quotas:
        tail += [bucket(q), q.cost]
    tail.append(len(candidates))
    for c in candidates:
        dep = cooldown(layout.deployment_cooldown(c.id))
        acct = cooldown(layout.account_cooldown(c.account))
        tail += [dep, acct, len(c.buckets)]
        for b in c.buckets:
            tail += [bucket(b), b.cost]
    head: Args = [strategy, len(specs)]
    for spec in specs:
        head += [spec.capacity, spec.refill_per_sec]
    keys = [layout.bucket(s.name) for s in specs] + list(cooling)
    return keys, head + tail
