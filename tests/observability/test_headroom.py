"""``gateway_bucket_headroom_ratio``'s reading of the limiters, whichever one a gateway runs: the in-process
buckets, a worker's share of them, the shared ones in Redis, and the local shares while Redis is away."""

from __future__ import annotations

import pytest
from redis_procs import RedisServer

from gateway.limits import LocalLimiter, ResilientLimiter, WorkerShare
from gateway.limits.model import BucketSpec, Candidate
from gateway.runtime import headroom

# Refilled over an hour: what a slow, loaded machine adds between taking and reading is negligible.
ACCOUNT = BucketSpec("acct:obs-a:rph", 100, 100 / 3600, 1, "requests")
OWN = BucketSpec("dep:obs-a/m:rph", 10, 10 / 3600, 1, "requests")
OTHER = BucketSpec("dep:obs-a/n:rph", 50, 50 / 3600, 1, "requests")
BUCKETS = {"obs-a/m": (ACCOUNT, OWN), "obs-a/n": (ACCOUNT, OTHER)}


async def take(limiter: LocalLimiter | WorkerShare | ResilientLimiter, deployment: str, times: int) -> None:
    for _ in range(times):
        admission = await limiter.admit([Candidate(deployment, "obs-a", BUCKETS[deployment])], ())
        assert admission.chosen == 0


async def test_in_process_the_emptiest_bucket_of_each_deployment_counts() -> None:
    limiter = LocalLimiter()
    await take(limiter, "obs-a/m", 5)  # its own bucket: 5 of 10 left; the account's: 95 of 100
    found = await headroom(limiter, BUCKETS)
    assert found["obs-a/m"] == pytest.approx(0.5, abs=0.02)
    assert found["obs-a/n"] == pytest.approx(0.95, abs=0.02)  # shares the account's bucket, not m's own


async def test_a_workers_share_reads_as_a_share_of_the_whole() -> None:
    limiter = WorkerShare(2)  # each worker holds 5 of m's 10
    await take(limiter, "obs-a/m", 2)
    assert (await headroom(limiter, BUCKETS))["obs-a/m"] == pytest.approx(0.6, abs=0.02)  # 3 of its 5


async def test_with_redis_the_fleets_buckets_and_while_it_is_away_the_local_shares(
    redis_server: RedisServer, prefix: str
) -> None:
    # A deadline far above what a busy test machine takes to answer: this test is about headroom, not deadlines
    # (at the 50 ms default, a loaded run once found the fresh server slow and started degraded).
    limiter = ResilientLimiter(redis_server.url, "replica-1", deadline=1.0, prefix=prefix, probe_interval=60)
    await limiter.start()
    try:
        await take(limiter, "obs-a/m", 4)
        assert limiter.mode == "redis"
        assert (await headroom(limiter, BUCKETS))["obs-a/m"] == pytest.approx(0.6, abs=0.02)
        redis_server.kill()
        # Finds Redis gone: local buckets from here, each starting where this replica last saw it in Redis.
        await take(limiter, "obs-a/m", 1)
        assert limiter.mode == "degraded"
        found = await headroom(limiter, BUCKETS)
        assert found["obs-a/m"] == pytest.approx(0.5, abs=0.02)  # 6 left in Redis, less this one (one live replica)
        # n's own bucket was never used here, so it starts full; the account's (96 seen, less this one) binds.
        assert found["obs-a/n"] == pytest.approx(0.95, abs=0.02)
    finally:
        await limiter.close()
