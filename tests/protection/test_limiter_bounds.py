"""The limiter against numbers nobody should send and a Redis that is full (issue 8, findings 1, 2, 10, 11).

Clients choose costs and end-user ids, providers choose usage reports, Retry-After values and
remaining-capacity headers: none of them may overflow a Lua script or a TTL, hold a bucket in debt for
long, or grow memory without bound. A Redis at maxmemory must degrade the limiter once, not flap.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis_procs import SHARED_URL, RedisServer, free_port

from gateway.config.model import Deployment, Limits, VirtualKey
from gateway.limits import build_limiter, specs
from gateway.limits.decide import MAX_COOLDOWN_SECONDS, MAX_TTL_SECONDS
from gateway.limits.local import LocalLimiter
from gateway.limits.model import BucketSpec, Candidate
from gateway.limits.redis_limiter import RedisLimiter
from gateway.limits.resilient import ResilientLimiter
from gateway.limits.share import WorkerShare
from gateway.providers import openai_compat
from gateway.routing import bounds

INT64_MAX = 2**63 - 1
TPM = BucketSpec("acct:a:tpm", capacity=1000, refill_per_sec=1000 / 60, cost=100, kind="tokens")


def with_cost(bucket: BucketSpec, cost: float) -> BucketSpec:
    return BucketSpec(bucket.name, bucket.capacity, bucket.refill_per_sec, cost, bucket.kind)


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"bounds-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(SHARED_URL)
    keys = list(client.scan_iter(match="{" + name + "}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["redis", "local"])
async def limiter(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[RedisLimiter | LocalLimiter]:
    impl: RedisLimiter | LocalLimiter
    impl = RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix) if request.param == "redis" else LocalLimiter()
    await impl.start()
    yield impl
    await impl.close()


def ttls(prefix: str) -> list[float]:
    client = redis.Redis.from_url(SHARED_URL)
    try:
        return [client.pttl(k) / 1000 for k in client.scan_iter(match="{" + prefix + "}:*")]
    finally:
        client.close()


@pytest.mark.parametrize("cost", [INT64_MAX, 1e300])
async def test_an_absurd_cost_drains_the_bucket_without_erroring_or_debt(
    limiter: RedisLimiter | LocalLimiter, prefix: str, cost: float
) -> None:
    """Finding 2: a cost of 2^63 - 1 overflowed the TTL of ``SET ... PX`` inside the admission script."""
    bucket, quota = with_cost(TPM, cost), BucketSpec("key:k:tpm", 500, 500 / 60, cost, "tokens")
    admission = await limiter.admit([Candidate("a/m", "a", (bucket,))], [quota])
    assert admission.chosen == 0
    assert admission.reservation is not None
    assert [b.cost for b in admission.reservation.buckets] == [1000, 500]  # what was really taken
    assert await limiter.levels([bucket, quota]) == [pytest.approx(0, abs=1)] * 2
    assert all(0 < ttl <= MAX_TTL_SECONDS for ttl in ttls(prefix))


@pytest.mark.parametrize("usage", [INT64_MAX, 10**30, -(10**12)])
async def test_an_absurd_usage_report_holds_the_bucket_at_most_one_capacity_in_debt(
    limiter: RedisLimiter | LocalLimiter, prefix: str, usage: int
) -> None:
    admission = await limiter.admit([Candidate("a/m", "a", (TPM,))], [])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, usage)
    (level,) = await limiter.levels([TPM])
    assert -TPM.capacity - 1 <= level <= TPM.capacity
    assert all(0 < ttl <= MAX_TTL_SECONDS for ttl in ttls(prefix))


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), 1e300, -5.0])
async def test_a_cooldown_of_any_length_is_finite_and_capped(
    limiter: RedisLimiter | LocalLimiter, seconds: float
) -> None:
    """Finding 6, limiter side: ``Retry-After: inf`` cooled a deployment down forever (or raised)."""
    await limiter.cooldown("a/m", "a", seconds, drain=[TPM])
    left = (await limiter.cooldowns(["a/m"]))["a/m"]
    assert 0 <= left <= MAX_COOLDOWN_SECONDS
    assert (left > 0) == (seconds > 0)


def test_end_user_ids_cost_the_same_whatever_their_length() -> None:
    """Finding 11: a 200 KB ``user`` made a 200 KB Redis key name per request."""
    key = VirtualKey("team", "x", "standard", frozenset({"*"}), user_limits=Limits(rpm=10, tpm=1000))
    short = specs.quotas(key, "alice", 10)
    huge = specs.quotas(key, "u" * 200_000, 10)
    assert [len(b.name) for b in short] == [len(b.name) for b in huge]
    assert all(len(b.name) < 64 for b in huge)
    assert {b.name for b in short}.isdisjoint(b.name for b in huge)
    assert specs.quotas(key, "alice", 10) == short  # stable across calls (and replicas)
    plain = VirtualKey("team", "x", "standard", frozenset({"*"}))
    assert specs.quotas(plain, "u" * 200_000, 10) == ()  # no per-user limits: nothing built


async def test_a_flood_of_end_users_cannot_grow_the_in_process_table() -> None:
    limiter = LocalLimiter(max_buckets=1000)
    account = BucketSpec("acct:a:tpm", 1e9, 1e6, 5e8, "tokens")
    await limiter.admit([Candidate("a/m", "a", (account,))], [])
    for n in range(20_000):
        user = BucketSpec(f"user:k:{n:016x}:rpm", 10, 10 / 60, 1, "requests")
        await limiter.admit([Candidate("a/m", "a", (with_cost(account, 1),))], [user])
    assert len(limiter) <= 1000
    (level,) = await limiter.levels([account])
    assert level < 0.6e9  # the busy account bucket kept its level (evicted, it would read as full)


async def test_a_worker_share_enforces_one_nth_of_each_limit() -> None:
    """Finding 10: with ``server.workers: N`` and no Redis, each worker admitted the whole limit."""
    limiter = build_limiter("", "r", workers=4)
    assert isinstance(limiter, WorkerShare)
    rpm = BucketSpec("dep:a/m:rpm", 60, 1 / 3600, 1, "requests")
    quota = BucketSpec("key:k:rpm", 100, 1 / 3600, 1, "requests")
    admitted = 0
    for _ in range(100):
        admission = await limiter.admit([Candidate("a/m", "a", (rpm,))], [quota])
        admitted += admission.chosen is not None
    assert admitted == 15
    assert admission.quota[0].limit == 100  # headers show the configured quota, not the share
    assert isinstance(build_limiter("", "r", workers=1), LocalLimiter)


@pytest.mark.parametrize(("raw", "expected"), [("12", 12.0), ("-3", 0.0), ("nan", None), ("inf", None), ("x", None)])
def test_a_providers_remaining_header_is_read_defensively(raw: str, expected: float | None) -> None:
    assert openai_compat.rate_limits({"x-ratelimit-remaining-tokens": raw}).get("tokens") == expected


@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port(), "--maxmemory", "2mb", "--maxmemory-policy", "noeviction").start()
    yield server
    server.kill()


def fill(url: str, stop: threading.Event) -> None:
    """Another tenant of the Redis keeps it at maxmemory: short-lived keys, rewritten as fast as they expire."""
    client = redis.Redis.from_url(url)
    n = 0
    while not stop.is_set():
        try:
            client.set(f"other:{n}", b"x" * 512, px=1500)
        except redis.exceptions.ResponseError:
            time.sleep(0.001)
        n += 1
    client.close()


async def test_a_full_redis_degrades_the_limiter_once_and_it_returns_when_memory_is_freed(
    full_redis: RedisServer,
) -> None:
    """At maxmemory every write fails with OOM, but memory hovers at the limit as keys expire and are
    rewritten: a probe that happens to land in a dip used to switch back to Redis, the next admissions
    failed, and the limiter flapped (7 switches in 5 s). Now it stays degraded while Redis is full."""
    modes: list[str] = []
    limiter = ResilientLimiter(full_redis.url, "r1", deadline=0.05, fail_mode="open", on_mode_change=modes.append)
    await limiter.start()
    stop = threading.Event()
    other = threading.Thread(target=fill, args=(full_redis.url, stop))
    try:
        assert limiter.mode == "redis"
        other.start()
        await asyncio.sleep(0.5)
        quota = BucketSpec("key:k:rpm", 1e6, 1e4, 1, "requests")
        account = BucketSpec("acct:a:tpm", 1e9, 1e7, 100, "tokens")
        ends = time.monotonic() + 5
        served = 0
        while time.monotonic() < ends:
            admission = await limiter.admit([Candidate("a/m", "a", (account,))], [quota])
            served += admission.chosen is not None
            if admission.reservation is not None:
                await limiter.settle(admission.reservation, 50)
            await asyncio.sleep(0.005)
        assert served > 100  # degraded, the provider buckets run locally: traffic goes on
        assert modes == ["degraded"]
    finally:
        stop.set()
        other.join()
    waited = time.monotonic()
    while limiter.mode != "redis":
        assert time.monotonic() - waited < 10, "the limiter did not return to Redis after memory was freed"
        await asyncio.sleep(0.05)
    await limiter.close()


def deployment(window: int | None, max_output: int | None) -> Deployment:
    return Deployment("a", "m", "m", "chat", Limits(), None, window, max_output, frozenset())


@pytest.mark.parametrize(
    ("window", "max_output", "bound"),
    [(128_000, 16_384, 16_384), (8_192, None, 8_192), (None, None, 32_768)],  # its own, its window, the config's
)
def test_the_output_bound_is_the_deployments_own_else_its_window_else_the_configured_one(
    window: int | None, max_output: int | None, bound: int
) -> None:
    d = deployment(window, max_output)
    assert bounds.output_bound(d, 32_768) == bound
    for param in ("max_tokens", "max_completion_tokens"):
        assert bounds.check(d, bounds.asked({param: bound}, prompt=0), 32_768) is None
        over = bounds.check(d, bounds.asked({param: bound + 1}, prompt=0), 32_768)
        assert over is not None and (over.status, over.param) == (400, param)
        assert str(bound) in over.message


@pytest.mark.parametrize(
    ("body", "prompt", "refused"),
    [
        ({"max_tokens": 4_000}, 4_000, None),
        ({"max_tokens": 4_000}, 4_193, "messages"),  # prompt + max_tokens over the 8,192 window
        ({}, 8_193, "messages"),  # the prompt alone
        ({"max_tokens": 9.0e18}, 10, "max_tokens"),  # an integral float counts as its value
        ({"max_tokens": "lots"}, 10, None),  # not a number: reserves the default; the provider refuses it
        ({"max_completion_tokens": 8_000, "max_tokens": 9_000}, 10, None),  # the newer name wins
    ],
)
def test_the_window_and_the_answers_cap_are_checked_together(
    body: dict[str, object], prompt: int, refused: str | None
) -> None:
    over = bounds.check(deployment(8_192, 8_192), bounds.asked(body, prompt), 32_768)
    assert (over.param if over is not None else None) == refused
