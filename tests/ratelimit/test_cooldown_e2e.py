"""A provider's 429 seen by one replica cools that deployment down for every replica sharing Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import redis
from harness import TEST_KEY
from ratelimit.support import ACCOUNT, BACKUP, Fleet, account, config, retry_after_seconds, wait_for
from redis_procs import SHARED_URL

from gateway.fake.testing import FakeUpstream

HEADERS = {"authorization": f"Bearer {TEST_KEY}"}
COOLDOWN_MS = 3000


def ask(url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "are you cooling down?"}], "max_tokens": 5}
    return httpx.post(f"{url}/chat/completions", json=body, headers=HEADERS, timeout=10)


def test_upstream_429_through_one_replica_cools_the_deployment_for_the_other(
    fleet: Fleet, make_fake: Callable[..., FakeUpstream], prefix: str, shared_redis: redis.Redis
) -> None:
    primary, backup = make_fake(), make_fake()
    providers = {
        ACCOUNT: account(primary.url, {"gpt-4o-mini": {}, "gpt-4o": {}}),
        BACKUP: account(backup.url, {"gpt-4o-mini": {}}),  # gpt-4o has no second deployment
    }
    a, b = fleet.start(lambda port: config(port, redis_url=SHARED_URL, prefix=prefix, providers=providers), 2)

    # 1. With a second deployment: A's request meets the provider's 429 and falls back.
    primary.configure("gpt-4o-mini", failure_kind="429", retry_after_ms=COOLDOWN_MS, fail_next=1)
    first = ask(a.base_url, "gpt-4o-mini")
    cooled_at = time.monotonic()
    assert first.status_code == 200, first.text
    assert first.headers["x-gateway-deployment"] == f"{BACKUP}/gpt-4o-mini"
    assert first.headers["x-gateway-attempts"] == "2"
    assert primary.stats()["rate_limited"] == 1
    left_ms = shared_redis.pttl("{" + prefix + "}:cd2:dep:" + f"{ACCOUNT}/gpt-4o-mini")
    assert 0 < left_ms <= COOLDOWN_MS  # the cooldown is shared state, with the provider's Retry-After

    # B has never seen that 429, yet goes straight to the backup: the primary is not asked again.
    for _ in range(3):
        other = ask(b.base_url, "gpt-4o-mini")
        assert other.status_code == 200
        assert other.headers["x-gateway-deployment"] == f"{BACKUP}/gpt-4o-mini"
        assert other.headers["x-gateway-attempts"] == "1"
    assert primary.stats()["requests_total"] == 1

    # 2. Without a second deployment: A passes the provider's 429 on; B answers 429 itself, with
    # Retry-After = the time the cooldown has left, and the provider sees nothing.
    primary.configure("gpt-4o", failure_kind="429", retry_after_ms=COOLDOWN_MS, fail_next=1)
    limited = ask(a.base_url, "gpt-4o")
    limited_at = time.monotonic()
    assert limited.status_code == 429
    assert retry_after_seconds(limited.headers)[1] == COOLDOWN_MS / 1000
    time.sleep(0.5)
    refused = ask(b.base_url, "gpt-4o")
    asked_at = time.monotonic()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "capacity_exhausted"
    _, wait = retry_after_seconds(refused.headers)
    left = COOLDOWN_MS / 1000 - (asked_at - limited_at)
    assert left - 0.15 <= wait <= left + (asked_at - limited_at - 0.5) + 0.15, (wait, left)
    assert primary.stats()["requests_total"] == 2  # the two requests through A only

    # 3. Once the cooldowns are over, B uses the primary again for both models.
    wait_for(lambda: time.monotonic() - limited_at > wait + 0.6, timeout=10)
    assert time.monotonic() - cooled_at > COOLDOWN_MS / 1000
    again = ask(b.base_url, "gpt-4o-mini")
    assert again.status_code == 200 and again.headers["x-gateway-deployment"] == f"{ACCOUNT}/gpt-4o-mini"
    again = ask(b.base_url, "gpt-4o")
    assert again.status_code == 200 and again.headers["x-gateway-deployment"] == f"{ACCOUNT}/gpt-4o"
    assert primary.stats()["requests_by_status"] == {"429": 2, "200": 2}
