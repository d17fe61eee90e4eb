"""After a request ends, the shared token buckets hold what the provider says was used.

Every request here reserves its estimate (prompt estimate + max_tokens) at admission; when it ends
the gateway gives back the difference to the provider's reported usage (JSON ``usage``, or the usage
chunk it asks for on every stream), gives back all tokens when the provider failed, and keeps at least
what the provider may have counted when the client left mid-stream.

How the comparison works: the buckets live in Redis as ``l`` (level) at ``t`` (Redis time) and refill
continuously at capacity/60 per second. A first, large request (3,000 completion tokens) puts every
bucket far below its capacity, so none of them can refill to the cap (which would lose refill) during
the seconds the test takes. From then on, for each bucket, exactly:

    l_end = l_anchor + refill_per_sec * (t_end - t_anchor) - tokens charged in between

so ``charged = l_anchor + rate * (t_end - t_anchor) - l_end`` is known to float precision (both times
come from the same Redis clock), and is compared with the fake's own count of prompt + completion
tokens over the same requests. Tolerance: 0.01 token (float rounding only) for requests that end
normally or fail; for disconnected streams, see ``test_disconnected_streams_never_undercount``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from ratelimit.support import ACCOUNT, QUOTA_KEY, Bucket, Fleet, account, config, key, settled_bucket, wait_for
from redis_procs import SHARED_URL

from gateway.fake.testing import FakeUpstream
from gateway.limits import specs
from gateway.tokens import estimate_prompt

USER = "alice"
# bucket name -> tokens per minute (capacity; refill is capacity / 60 per second)
BUCKETS = {
    f"acct:{ACCOUNT}:tpm": 6000,
    "key:quota:tpm": 12000,
    f"user:quota:{specs.end_user_digest(USER)}:tpm": 6000,  # end users are named by digest
}
HEADERS = {"authorization": f"Bearer {QUOTA_KEY}"}
EXACT = 0.01  # tokens: float rounding of the stored levels only


@pytest.fixture
def setup(
    fleet: Fleet, make_fake: Callable[..., FakeUpstream], prefix: str, shared_redis: redis.Redis
) -> tuple[str, FakeUpstream]:
    fake = make_fake()
    fake.configure("gpt-4o", tokens_per_second=20)  # slow streams, to leave in the middle
    models = {"gpt-4o-mini": {}, "gpt-4o": {}}
    providers = {ACCOUNT: account(fake.url, models, {"tpm": BUCKETS[f"acct:{ACCOUNT}:tpm"]})}
    keys = [key("quota", QUOTA_KEY, limits={"tpm": 12000}, user_limits={"tpm": 6000})]
    (gw,) = fleet.start(lambda port: config(port, redis_url=SHARED_URL, prefix=prefix, providers=providers, keys=keys))
    return gw.base_url, fake


def body(content: str, max_tokens: int, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "user": USER,
        **extra,
    }


def fake_tokens(fake: FakeUpstream) -> int:
    stats = fake.stats()
    return int(stats["prompt_tokens"]) + int(stats["completion_tokens"])


def anchors(client: redis.Redis, prefix: str) -> dict[str, Bucket]:
    found = {name: settled_bucket(client, prefix, name) for name in BUCKETS}
    for name, bucket in found.items():
        # far enough below capacity that no refill to the cap can happen during the test
        assert BUCKETS[name] - bucket.level > 2500, (name, bucket)
    return found


def charged_since(client: redis.Redis, prefix: str, start: dict[str, Bucket]) -> dict[str, float]:
    """Tokens each bucket was charged since ``start`` (net of refunds), exactly, from Redis."""
    out = {}
    for name, capacity in BUCKETS.items():
        end = settled_bucket(client, prefix, name)
        out[name] = start[name].level + capacity / 60 * (end.at - start[name].at) - end.level
    return out


def stream(url: str, payload: dict[str, Any], stop_after: int | None = None) -> tuple[int, list[str]]:
    """(status, data lines); with ``stop_after``, hang up after that many data lines."""
    lines: list[str] = []
    with httpx.stream("POST", f"{url}/chat/completions", json=payload, headers=HEADERS, timeout=10) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, lines
        for line in r.iter_lines():
            if line.startswith("data: "):
                lines.append(line[6:])
                if stop_after is not None and len(lines) >= stop_after:
                    break
    return r.status_code, lines


def prime(url: str, client: redis.Redis, prefix: str, fake: FakeUpstream) -> tuple[dict[str, Bucket], int]:
    big = httpx.post(f"{url}/chat/completions", json=body("a long essay", 3000), headers=HEADERS, timeout=10)
    assert big.status_code == 200 and big.json()["usage"]["completion_tokens"] == 3000
    return anchors(client, prefix), fake_tokens(fake)


def test_buckets_match_reported_usage_after_json_streams_and_failures(
    setup: tuple[str, FakeUpstream], shared_redis: redis.Redis, prefix: str
) -> None:
    url, fake = setup
    start, fake_before = prime(url, shared_redis, prefix, fake)

    reported = 0  # usage as the client saw it, where the client asked for it
    for i, max_tokens in enumerate((5, 40, 120)):
        r = httpx.post(
            f"{url}/chat/completions", json=body(f"json request {i} " * (i + 1), max_tokens), headers=HEADERS
        )
        assert r.status_code == 200
        reported += r.json()["usage"]["total_tokens"]
    for i in range(2):  # streams with the usage chunk asked for: it is relayed
        status, lines = stream(
            url, body(f"stream with usage {i}", 30, stream=True, stream_options={"include_usage": True})
        )
        assert status == 200 and lines[-1] == "[DONE]"
        usage = httpx.Response(200, content=lines[-2]).json()["usage"]
        reported += usage["total_tokens"]
    for i in range(2):  # streams without it: the gateway asks anyway and drops the chunk
        status, lines = stream(url, body(f"stream without usage {i}", 25 + i, stream=True))
        assert status == 200 and lines[-1] == "[DONE]"
        assert all('"usage":{' not in line for line in lines)
    # Failures: every attempt fails (the gateway retries the same deployment once), nothing to fall back to.
    fake.configure("gpt-4o-mini", failure_kind="500", failure_rate=1.0)
    failed = httpx.post(f"{url}/chat/completions", json=body("this one fails", 200), headers=HEADERS)
    assert failed.status_code == 502
    fake.configure("gpt-4o-mini", failure_kind="503")
    status, _ = stream(url, body("this stream fails", 200, stream=True))
    assert status == 502
    fake.configure("gpt-4o-mini", failure_rate=0.0)
    assert sum(fake.stats()["failures_injected"].values()) >= 2

    used = fake_tokens(fake) - fake_before
    assert used > reported > 0  # the streams without a usage chunk count too
    charged = charged_since(shared_redis, prefix, start)
    for name, tokens in charged.items():
        assert tokens == pytest.approx(used, abs=EXACT), (name, charged, used)


def test_disconnected_streams_never_undercount(
    setup: tuple[str, FakeUpstream], shared_redis: redis.Redis, prefix: str
) -> None:
    """Clients hang up after 3 events of a 60-token stream (the fake sends 20 tokens/s).

    The fake counts the whole completion it planned, as a provider counts what it generated (or
    max_tokens) whether or not anyone read it; the gateway saw only the few events it relayed, and no
    usage chunk. Counting those events (prompt estimate + 3) would under-count each stream by ~55
    tokens. Tolerance: the gateway may count more, up to its reservation (prompt estimate +
    max_tokens), and never less than the fake, not even by one token (beyond float rounding): an
    under-count is exactly what lets later requests through into a provider 429."""
    url, fake = setup
    start, fake_before = prime(url, shared_redis, prefix, fake)
    disconnects = fake.stats()["disconnects"]
    reservation = 0
    for i in range(3):
        payload = body(f"leave early {i}", 60, model="gpt-4o", stream=True)
        reservation += estimate_prompt(payload) + 60
        status, lines = stream(url, payload, stop_after=3)
        assert status == 200 and "[DONE]" not in lines
    # the upstream streams are closed (within a second of each hang-up), not read to their end
    wait_for(lambda: fake.stats()["disconnects"] - disconnects == 3, timeout=5)
    used = fake_tokens(fake) - fake_before
    charged = charged_since(shared_redis, prefix, start)
    for name, tokens in charged.items():
        assert used - EXACT <= tokens <= reservation + EXACT, (name, f"gateway {tokens:.2f}", f"fake {used}")
