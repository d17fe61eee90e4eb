"""What providers say about their own limits reaches the shared buckets: `insufficient_quota` cools the whole
account, and `x-ratelimit-remaining-*` running low lowers our bucket before the provider starts refusing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from harness import TEST_KEY, UPSTREAM_KEY
from ratelimit.support import ACCOUNT, BACKUP, Fleet, account, config, wait_for
from redis_procs import SHARED_URL

from gateway.fake.testing import FakeUpstream
from gateway.limits.model import BucketSpec
from gateway.limits.redis_limiter import RedisLimiter
from gateway.state.store import build_client

HEADERS = {"authorization": f"Bearer {TEST_KEY}"}


def ask(url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "quota?"}], "max_tokens": 5}
    return httpx.post(f"{url}/chat/completions", json=body, headers=HEADERS, timeout=10)


def test_insufficient_quota_cools_every_deployment_of_the_account(
    fleet: Fleet, make_fake: Callable[..., FakeUpstream], prefix: str, shared_redis: redis.Redis
) -> None:
    primary, backup = make_fake(), make_fake()
    providers = {
        ACCOUNT: account(primary.url, {"gpt-4o-mini": {}, "gpt-4o": {}}),
        BACKUP: account(backup.url, {"gpt-4o-mini": {}, "gpt-4o": {}}),
    }
    [gateway] = fleet.start(lambda port: config(port, redis_url=SHARED_URL, prefix=prefix, providers=providers))
    primary.configure("gpt-4o-mini", failure_kind="insufficient_quota", fail_next=1)
    first = ask(gateway.base_url, "gpt-4o-mini")
    assert first.status_code == 200 and first.headers["x-gateway-deployment"] == f"{BACKUP}/gpt-4o-mini"
    assert shared_redis.pttl("{" + prefix + "}:cd2:acct:" + ACCOUNT) > 0  # the account, not one deployment
    # The other model of the spent account is not even tried: the account's credit is gone for it too.
    other = ask(gateway.base_url, "gpt-4o")
    assert other.status_code == 200 and other.headers["x-gateway-deployment"] == f"{BACKUP}/gpt-4o"
    assert other.headers["x-gateway-attempts"] == "1"
    assert primary.stats()["requests_total"] == 1


def _level(prefix: str, bucket: BucketSpec) -> float:
    async def read() -> float:
        limiter = RedisLimiter(build_client(SHARED_URL), prefix)
        try:
            return (await limiter.levels([bucket]))[0]
        finally:
            await limiter.close()

    return asyncio.run(read())


def test_remaining_headers_lower_the_shared_bucket(
    fleet: Fleet, make_fake: Callable[..., FakeUpstream], prefix: str
) -> None:
    """Another client of the same provider account (not behind this gateway) has spent most of it: the
    provider's x-ratelimit-remaining-requests says so, and the gateway stops sending before the 429s."""
    provider = make_fake(rpm=60)
    providers = {ACCOUNT: account(provider.url, {"gpt-4o-mini": {}}, {"rpm": 60})}
    # A generous Redis deadline: a correction made while a loaded machine briefly degraded the limiter would
    # land in local buckets, not in the shared one this test reads.
    [gateway] = fleet.start(
        lambda port: config(port, redis_url=SHARED_URL, prefix=prefix, providers=providers, redis_deadline_ms=1000)
    )
    direct = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}

    def other_client(_: int) -> int:  # straight to the provider with the same credential
        auth = {"authorization": f"Bearer {UPSTREAM_KEY}"}
        return httpx.post(f"{provider.base_url}/chat/completions", json=direct, headers=auth).status_code

    # 59 of the 60 a minute, quickly: the gateway's request is the 60th, and the provider says it has ~0 left
    # (plus what refilled meanwhile: a correction needs under 10 %, 6 requests, so this has 5 s)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(other_client, range(59))) == {200}
    seen = ask(gateway.base_url, "gpt-4o-mini")
    assert seen.status_code == 200, seen.text
    bucket = BucketSpec(f"acct:{ACCOUNT}:rpm", 60, 1.0, 0, "requests")
    # Corrected from ~59 to what the provider has left (both then refill at a request a second).
    wait_for(lambda: _level(prefix, bucket) < 10, timeout=5)
    answers = [ask(gateway.base_url, "gpt-4o-mini") for _ in range(12)]
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= 2 and all(a.json()["error"]["code"] == "capacity_exhausted" for a in refused)
    assert provider.stats()["rate_limited"] == 0  # the gateway refused before the provider had to
