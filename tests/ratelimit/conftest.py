"""Fixtures for the rate-limit end-to-end tests: private fakes, gateway fleets, Redis and key cleanup.

Every test gets its own ``limits.key_prefix``, so no two tests (or runs) ever share a bucket, and its
own fake upstreams, so limits and counters start fresh. Tests that only need Redis use the shared
server at 127.0.0.1:6379; tests that kill, pause or cluster Redis start private redis-servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from harness import UPSTREAM_KEY
from ratelimit.support import Fleet
from redis_procs import SHARED_URL, RedisServer, free_port

from gateway.fake.testing import FakeUpstream


@pytest.fixture
def prefix() -> str:
    return f"rl-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def shared_redis(prefix: str) -> Iterator[redis.Redis]:
    """A client to the shared Redis; deletes every key under the test's prefix afterwards."""
    client = redis.Redis.from_url(SHARED_URL)
    yield client
    keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    gateways = Fleet(tmp_path)
    yield gateways
    gateways.stop_all()


@pytest.fixture
def make_fake() -> Iterator[Callable[..., FakeUpstream]]:
    """``make_fake(rpm=..., tpm=..., **behaviour)``: a fresh fake upstream, stopped at teardown."""
    started: list[FakeUpstream] = []

    def make(**kwargs: Any) -> FakeUpstream:
        fake = FakeUpstream(api_key=UPSTREAM_KEY, **kwargs)
        fake.start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port()).start()
    yield server
    server.kill()
