"""The gateway on a three-node Redis Cluster: limits are enforced and readiness says ``redis``."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from harness import TEST_KEY
from ratelimit.support import ACCOUNT, QUOTA_KEY, Fleet, account, config, key, readiness, retry_after_seconds

from gateway.fake.testing import FakeUpstream


def test_limits_on_a_redis_cluster(
    fleet: Fleet, make_fake: Callable[..., FakeUpstream], prefix: str, cluster_url: str
) -> None:
    fake = make_fake()
    providers = {ACCOUNT: account(fake.url, {"gpt-4o-mini": {}}, {"rpm": 3})}
    keys = [key("tester", TEST_KEY), key("quota", QUOTA_KEY, limits={"rpm": 2})]
    a, b = fleet.start(
        lambda port: config(port, redis_url=cluster_url, prefix=prefix, providers=providers, keys=keys), 2
    )
    # (fleet.start waited for both to be on Redis: the cluster client's first connections may take
    # longer than the 50 ms start-up deadline, and a replica then starts degraded and switches over.)
    assert readiness(a) == readiness(b) == "redis"

    def ask(url: str, secret: str) -> httpx.Response:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "cluster?"}], "max_tokens": 5}
        return httpx.post(
            f"{url}/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}, timeout=10
        )

    # The key's quota (2 a minute), shared by both replicas through the cluster.
    assert ask(a.base_url, QUOTA_KEY).status_code == 200
    assert ask(b.base_url, QUOTA_KEY).status_code == 200
    over = ask(a.base_url, QUOTA_KEY)
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limit_exceeded"
    assert over.headers["x-ratelimit-remaining-requests"] == "0"
    # The account's capacity (3 a minute): two used above, one left, then 429 on either replica.
    assert ask(b.base_url, TEST_KEY).status_code == 200
    full = ask(a.base_url, TEST_KEY)
    assert full.status_code == 429 and full.json()["error"]["code"] == "capacity_exhausted"
    _, wait = retry_after_seconds(full.headers)
    assert 15 <= wait <= 20  # 60 s / 3 for the first refill, less the seconds since the first request
    assert ask(b.base_url, TEST_KEY).status_code == 429
    assert fake.stats()["requests_total"] == 3
    assert readiness(a) == readiness(b) == "redis"  # never degraded along the way
