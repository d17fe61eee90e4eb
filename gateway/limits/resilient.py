"""The limiter a replica uses with Redis configured: Redis while it answers, local buckets while not.

Every Redis call is bounded by ``deadline`` (tens of milliseconds), more while this process itself was stalled
(``stall_aware_limit``: a CPU-starved process must not blame Redis). The first failure switches to
``degraded``: provider-protection buckets then run locally with each capacity and refill divided by the
number of live replicas (so the fleet together stays near the provider's limit), each starting from the
level this replica last saw in Redis (``RedisLimiter.seen``), and quota buckets follow ``fail_mode``:
"closed" refuses requests that carry quotas with a 503, "open" ignores quotas.
A background task probes Redis while degraded (first soon after the failure, then every ``probe_interval``)
and switches back by itself when it answers. After
Redis refused a write for lack of memory (maxmemory with ``noeviction``), answering is not enough: memory
hovers at the limit as keys expire and are rewritten, and a probe landing in a dip would switch back only
for the next admissions to fail again. The probes then also ask for room (used memory below
``ROOM`` of maxmemory, on ``ROOM_PROBES`` in a row), so the limiter stays degraded, once, until memory is
really freed.

Cooldowns taken locally are not copied to Redis; what requests admitted on local shares used is, once it
answers (``decide.carried``), since the provider counted it, and so are the reservations of those still
running then (they settle afterwards as Redis's own). Replicas find Redis again up to a probe interval
apart, and until the others have charged what their shares admit, Redis holds refill they are spending:
for ``RETURN_PROBES`` probe intervals after its return a replica also keeps within its own shares.

Budgets are carried too (``budget_shares``): while degraded each replica may spend its share of what is left
of a budget, a budget whose share is spent follows ``fail_mode`` (closed: 503; open: admitted), and what was
spent meanwhile is added to Redis when it answers again, so spend is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from gateway.errors import ServiceUnavailable
from gateway.limits.budget_shares import BudgetShares, spent_by
from gateway.limits.carry import Carry, queue
from gateway.limits.decide import budget_refunds, refunds, reserved, wait
from gateway.limits.local import LocalLimiter
from gateway.limits.model import Admission, BucketSpec, Budget, Candidate, Reservation, Strategy
from gateway.limits.redis_limiter import RedisLimiter
from gateway.limits.share import scaled
from gateway.state.pipe import Pipe
from gateway.state.replicas import ReplicaRegistry
from gateway.state.store import REDIS_FAILURES, Scripts, build_client, warm
from gateway.time_limit import stall_aware_limit

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOM = 0.9  # after an out-of-memory refusal, Redis is used again once below this share of maxmemory ...
ROOM_PROBES = 2  # ... on this many probes in a row: memory hovering at the limit dips below it now and then
STALE_SLACK = 0.03  # seconds: more than the error of the heartbeat's clock offset (half a quick round trip)
# After its return to Redis a replica keeps within its local shares for this many probe intervals: by then
# every replica that degraded with it has probed (one interval, plus a probe that timed out) and charged Redis.
RETURN_PROBES = 2
FIRST_PROBE_DEADLINES = 4  # the first probe after a failure comes this many deadlines after it


class Unavailable(enum.Enum):
    REDIS = "Redis is unavailable"


def out_of_memory(error: BaseException) -> bool:
    """Redis refused a write at maxmemory (redis-py's OutOfMemoryError, or the pipe's reply error)."""
    return "maxmemory" in str(error)


def has_room(info: dict[str, Any]) -> bool:
    """``INFO memory`` (one server's, or a cluster's per-node map) says every server is below ``ROOM``.

    >>> has_room({"used_memory": 950, "maxmemory": 1000}), has_room({"used_memory": 950, "maxmemory": 0})
    (False, True)
    """
    if "used_memory" not in info:
        return all(has_room(node) for node in info.values() if isinstance(node, dict))
    limit = int(info.get("maxmemory") or 0)
    return limit == 0 or int(info["used_memory"]) < ROOM * limit


class ResilientLimiter:
    def __init__(
        self,
        redis_url: str,
        replica_id: str,
        local_fallback_divisor_source: Callable[[], int] | None = None,
        deadline: float = 0.05,
        fail_mode: str = "closed",
        *,
        prefix: str = "llmgw",
        on_mode_change: Callable[[str], None] | None = None,
        probe_interval: float = 0.5,
        settle_interval: float = 0.02,
        heartbeat_interval: float = 2.0,
    ) -> None:
        if fail_mode not in ("closed", "open"):
            raise ValueError(f"fail_mode must be 'closed' or 'open', not {fail_mode!r}")
        self.fail_mode = fail_mode
        self.deadline = deadline
        self.on_mode_change = on_mode_change
        self.probe_interval = probe_interval
        self.settle_interval = settle_interval
        self._pending: dict[str, tuple[BucketSpec, float]] = {}  # bucket name -> (bucket, queued delta)
        self.carry = Carry()  # what degraded admissions owe Redis's buckets once it answers
        self._returning = 0.0  # monotonic time until which admissions also keep within the local shares
        self.budgets = BudgetShares()  # spend seen, and spend owed to Redis
        self._flushing = asyncio.Lock()  # one flush at a time: batches reach Redis in order
        self._flusher: asyncio.Task[None] | None = None
        client = build_client(redis_url)
        scripts = Scripts(client)
        pipe = Pipe(redis_url, timeout=2 * deadline) if Pipe.supports(redis_url) else None
        self.redis = RedisLimiter(client, prefix, scripts=scripts, pipe=pipe)
        # An admission's caller waits twice the deadline from sending it; beyond that (and the clocks'
        # measuring error), Redis runs it as a no-op rather than charge what nobody will settle.
        self.redis.patience = 2 * deadline + STALE_SLACK
        self.local = LocalLimiter()
        self.replicas = ReplicaRegistry(client, scripts, self.redis.keys, replica_id, heartbeat_interval)
        self._divisor = local_fallback_divisor_source or (lambda: self.replicas.live)
        self.mode = "redis"  # "redis" | "degraded"; set only by _set_mode
        self._full = False  # the last degradation was Redis out of memory: probes also ask for room
        self._roomy = 0  # probes in a row that found room since then
        self._degraded = asyncio.Event()  # wakes the background task early
        self._task: asyncio.Task[None] | None = None

    @property
    def round_trips(self) -> int:
        """Redis round trips made so far (the benchmark's counter; degraded calls make none)."""
        return self.redis.round_trips

    async def admit(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission:
        answer: Admission | Unavailable = Unavailable.REDIS
        if self.mode == "redis" and self.redis.pipe is not None:
            # The admission pipe keeps the deadline itself (one timer per connection, not one per call): the
            # call on every request's path goes to Redis directly.
            try:
                answer = await self.redis.admit(candidates, quotas, strategy, budgets)
            except REDIS_FAILURES as error:
                self._degrade(error)
        else:
            answer = await self._on_redis(lambda: self.redis.admit(candidates, quotas, strategy, budgets))
        if not isinstance(answer, Unavailable):
            if budgets:
                self.budgets.saw(budgets, answer.spent)
            if self._returning:
                return await self._within_shares(candidates, quotas, strategy, budgets, answer)
            return answer
        if quotas and self.fail_mode == "closed":
            raise ServiceUnavailable("rate-limit state is unavailable", retry_after=1.0)
        n = self.divisor()
        shares = [replace(c, buckets=tuple(scaled(b, n) for b in c.buckets)) for c in candidates]
        if not budgets:
            admission = await self.local.admit(shares, (), strategy)
        else:
            admission = await self._admit_shares(shares, strategy, budgets, n)
        if admission.chosen is None or admission.reservation is None:
            return admission
        # The reservation names the real buckets and budgets, so it settles correctly wherever it is settled.
        took = tuple((b, t) for b, (_, t) in zip(budgets, admission.reservation.budgets, strict=False))
        reservation = Reservation(reserved(candidates[admission.chosen].buckets), took, local=True)
        self.carry.admitted(reservation)
        return replace(admission, reservation=reservation)

    async def _within_shares(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy,
        budgets: Sequence[Budget],
        answer: Admission,
    ) -> Admission:
        """Redis's answer, kept within this replica's local shares while other replicas may not be back yet: the
        chosen candidate's share pays for it too, or Redis's charge is given back and the candidates whose
        shares have room are asked again."""
        chosen = answer.chosen
        if chosen is None or answer.reservation is None:
            return answer
        if time.monotonic() >= self._returning or self.mode != "redis":
            self._returning = 0.0
            return answer
        n = self.divisor()
        share = self._share(candidates[chosen], n)
        if self._fits(share):
            await self.local.apply([(b, -b.cost) for b in share])
            return answer
        await self.settle(answer.reservation, None, None)  # nothing reached the provider: all of it back
        rest = [i for i, c in enumerate(candidates) if i != chosen and self._fits(self._share(c, n))]
        if rest:
            again = await self.admit([candidates[i] for i in rest], quotas, strategy, budgets)
            return again if again.chosen is None else replace(again, chosen=rest[again.chosen])
        levels = [(b, self.local.level(b)) for b in share]
        retry_after = max(wait(b, level) for b, level in levels)
        skipped = ((candidates[chosen].id, f"full: {next(b.name for b, level in levels if level < b.cost)}"),)
        return Admission(None, retry_after, answer.quota, skipped, None, False, spent=answer.spent)

    @staticmethod
    def _share(candidate: Candidate, replicas: int) -> tuple[BucketSpec, ...]:
        """This replica's share of each of the candidate's buckets, as admission charges it."""
        return reserved(tuple(scaled(b, replicas) for b in candidate.buckets))

    def _fits(self, share: tuple[BucketSpec, ...]) -> bool:
        return all(self.local.level(b) >= b.cost for b in share)

    async def _admit_shares(
        self, shares: list[Candidate], strategy: Strategy, budgets: Sequence[Budget], replicas: int
    ) -> Admission:
        """Admission on this replica's share of each budget while Redis is unavailable."""
        local, over = self.budgets.shares(budgets, replicas)
        seen = tuple(self.budgets.seen(b) for b in budgets)
        if over is not None:  # spent, as Redis last said: refused for certain, whatever fail_mode says
            return Admission(None, 0.0, (), (), None, False, over_budget=over, spent=seen)
        admission = await self.local.admit(shares, (), strategy, local)
        if admission.over_budget is not None:  # this replica's share is spent: the budget cannot be checked
            if self.fail_mode == "closed":
                raise ServiceUnavailable("spend budgets cannot be checked while Redis is unavailable", retry_after=1.0)
            admission = await self.local.admit(shares, (), strategy)
            if admission.reservation is not None:  # admitted regardless; its cost is still owed to Redis
                budgets_taken = tuple((b, 0.0) for b in local)
                admission = replace(admission, reservation=replace(admission.reservation, budgets=budgets_taken))
        spent = tuple(s + lv for s, lv in zip(seen, admission.spent or (0.0,) * len(seen), strict=True))
        return replace(admission, spent=spent, alerts=())  # shares of a budget raise no fleet alert

    async def settle(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> None:
        """Queue the reconciliation; queued deltas go to Redis together every ``settle_interval``.

        Reconciling is never on a request's path, and batching turns one round trip per request
        into one per interval under load; buckets learn actual usage a few milliseconds later.
        Budget deltas wait for Redis however long it is away (``budget_shares``).
        """
        if reservation.budgets:
            if reservation.local:
                self.local.add_spend(budget_refunds(reservation, actual_tokens, actual_cost))
                self.budgets.owe(spent_by(reservation, actual_tokens, actual_cost))
            elif actual_tokens is not None and actual_cost is not None:  # the usual case, on every request
                self.budgets.owe_settled(reservation.budgets, actual_cost)
            else:
                self.budgets.owe(budget_refunds(reservation, actual_tokens, actual_cost))
        changes = refunds(reservation, actual_tokens)
        redis = self.mode == "redis"
        if not redis and changes:
            n = self.divisor()
            await self.local.settle(Reservation(tuple(scaled(b, n) for b in reservation.buckets)), actual_tokens)
        # Redis never held a degraded admission's charge (unless the switch back moved it there): what it used is
        # owed to Redis instead of a refund, and waits for it: the switch back sends it first (``_probe``).
        owed = reservation.local and self.carry.settle(reservation, actual_tokens)
        if redis and not owed:
            queue(self._pending, changes)
        queued = self._pending or self.budgets.owing or (redis and self.carry.owing)
        if queued and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.settle_interval)
        await self.flush()

    async def flush(self) -> None:
        """Send the queued reconciliations now (one round trip); buckets locally if Redis is unavailable,
        budget spend kept until it answers (batches in order, each applied once: ``budget_shares``)."""
        async with self._flushing:
            waiting = self.budgets.resend()
            while waiting:
                seq, batch = waiting.pop(0)
                if not await self._sent([], batch, seq):  # kept again, with every later one, in order
                    for later in waiting:
                        self.budgets.failed(*later)
                    break
            pending, self._pending = list(self._pending.values()), {}
            seq, owed = (0, []) if waiting else self.budgets.take()
            used = self.carry.take() if self.mode == "redis" else []  # kept until Redis answers
            if pending or owed or used:
                await self._sent(pending, owed, seq, used)

    async def _sent(
        self,
        pending: list[tuple[BucketSpec, float]],
        owed: list[tuple[Budget, float]],
        seq: int,
        used: Sequence[tuple[BucketSpec, float]] = (),
    ) -> bool:
        """Send one batch; when Redis fails, apply its buckets locally and keep its budget spend and the usage
        of degraded admissions (``used``) for later."""
        batch = (self.replicas.replica_id, seq) if seq else None
        changes = [*pending, *used] if used else pending
        if await self._on_redis(lambda: self.redis.apply(changes, owed, batch)) is not Unavailable.REDIS:
            return True
        if owed:
            self.budgets.failed(seq, owed)
        self.carry.owe(used)
        if pending:
            n = self.divisor()
            await self.local.apply([(scaled(bucket, n), delta / n) for bucket, delta in pending])
        return False

    async def cooldown(
        self, deployment_id: str, account: str | None, seconds: float, drain: Sequence[BucketSpec] = ()
    ) -> None:
        done = await self._on_redis(lambda: self.redis.cooldown(deployment_id, account, seconds, drain))
        if done is not Unavailable.REDIS:
            return
        n = self.divisor()
        await self.local.cooldown(deployment_id, account, seconds, [scaled(b, n) for b in drain])

    async def cooldowns(self, ids: Sequence[str]) -> dict[str, float]:
        left = await self._on_redis(lambda: self.redis.cooldowns(ids))
        if not isinstance(left, Unavailable):
            return left
        return await self.local.cooldowns(ids)

    async def correct(self, bucket: BucketSpec, remaining: float) -> None:
        if await self._on_redis(lambda: self.redis.correct(bucket, remaining)) is not Unavailable.REDIS:
            return
        n = self.divisor()
        await self.local.correct(scaled(bucket, n), remaining / n)

    async def _on_redis(self, call: Callable[[], Awaitable[T]]) -> T | Unavailable:
        """Run one Redis call within the deadline; on a failure switch to degraded mode.

        Degrading on a loop that was merely busy would admit a second helping from full local
        buckets, so the budget is twice the deadline. A refused connection, or no answer within
        that, means Redis is in trouble.
        """
        if self.mode != "redis":
            return Unavailable.REDIS
        try:
            # The call gets twice the deadline before Redis is judged, and more while this process itself was
            # stalled: a busy event loop, not Redis, may be what is late (one timer, no extra task).
            with stall_aware_limit(2 * self.deadline):
                return await call()
        except REDIS_FAILURES as error:
            self._degrade(error)
        return Unavailable.REDIS

    def divisor(self) -> int:
        return max(1, int(self._divisor()))

    async def start(self) -> None:
        """Connect, load the scripts and register this replica, waiting at most ``deadline`` (more while a
        starting process's own stalls hold the loop: ``stall_aware_limit``).

        If Redis is slow or down, start degraded; the first probe keeps running in the background and
        switches to Redis when it succeeds.
        """
        first = asyncio.create_task(self._probe(load_scripts=True))
        try:
            with stall_aware_limit(self.deadline):
                await asyncio.shield(first)
        except TimeoutError:
            self._degrade(TimeoutError("Redis did not answer within the deadline at start"))
        self._task = asyncio.create_task(self._run(first))

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            # Bounded: redis-py on Python 3.11 can swallow a cancel that lands as a write completes,
            # and shutdown must not wait on that forever.
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
        if self.mode == "redis":
            with contextlib.suppress(*REDIS_FAILURES):
                async with asyncio.timeout(self.deadline):
                    await self.replicas.leave()
        await self.redis.close()
        await self.local.close()

    async def _run(self, first: asyncio.Task[None]) -> None:
        await first
        # Open the pool's connections before traffic needs them (a burst on a cold replica would
        # otherwise connect inside its deadlines); off the start-up path, so start stays fast.
        with contextlib.suppress(*REDIS_FAILURES):
            async with asyncio.timeout(1.0):
                await warm(self.redis.client)
        while True:
            if self.mode == "degraded":
                await asyncio.sleep(self.probe_interval)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.replicas.interval):
                        await self._degraded.wait()
                if self.mode == "degraded":  # a request found Redis failing: probe soon, then every interval
                    # A stall or a blip of a fraction of a second is over by then, and until this replica is back,
                    # the others on Redis do not see what its shares admit.
                    await asyncio.sleep(min(self.probe_interval, FIRST_PROBE_DEADLINES * self.deadline))
            await self._probe(load_scripts=self.mode == "degraded")

    async def _probe(self, load_scripts: bool) -> None:
        """The heartbeat, which is also the probe while degraded (then the scripts are loaded again
        first, since a restarted Redis has lost them)."""
        try:
            with stall_aware_limit(max(self.deadline, self.probe_interval / 2)):
                if load_scripts:
                    await self.redis.start()
                await self.replicas.beat()
                self.redis.offset = self.replicas.offset  # so admissions Redis runs too late do nothing
                if self._full and self.mode == "degraded":
                    self._roomy = self._roomy + 1 if has_room(await self.redis.client.info("memory")) else 0
                    if self._roomy < ROOM_PROBES:
                        return  # answering, but still full (or in a dip): stay degraded (no log line, no switch)
                if self.mode == "degraded":  # before admitting there: Redis holds the refill the shares spent
                    await self.carry.send(self.redis.apply)
        except REDIS_FAILURES as error:
            self._degrade(error)
            return
        self._full = False
        self._set_mode("redis")

    def _degrade(self, error: BaseException) -> None:
        if self.mode != "degraded":
            log.warning("rate limiting degraded to local buckets", {"event": "limiter_degraded", "error": repr(error)})
            self._degraded.set()
            self._full, self._roomy = out_of_memory(error), 0
            self._start_shares()
        self._set_mode("degraded")

    def _start_shares(self) -> None:
        """Local shares start where this replica last saw each provider bucket in Redis, divided among the
        live replicas, and refill from then; a bucket it never saw starts full. A full share at every switch
        would let a fleet whose provider account is spent admit up to another minute of it on a blip of a
        fraction of a second."""
        n = self.divisor()
        self.local.restart([(scaled(b, n), level / n, at) for b, level, at in self.redis.seen.values()])

    def _set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        if mode == "redis":
            self._degraded.clear()
            self._returning = time.monotonic() + RETURN_PROBES * self.probe_interval
            self.local.forget_spend()  # the shares spent meanwhile are owed to Redis, which counts them now
            if (self.budgets.owing or self.carry.owing) and (self._flusher is None or self._flusher.done()):
                self._flusher = asyncio.create_task(self._flush_later())
            log.info("rate limiting is back on Redis", {"event": "limiter_recovered"})
        if self.on_mode_change is not None:
            try:
                self.on_mode_change(mode)
            except Exception:  # a metrics hook must never break admission
                log.exception("on_mode_change hook failed")
