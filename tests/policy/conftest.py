"""Fixtures for the routing-policy end-to-end tests: clean fakes, gateways started per test, Redis prefixes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from harness import GatewayProcess, free_port, start_gateway
from policy.support import REDIS_URL

from gateway.fake.testing import FakeUpstream


@pytest.fixture(autouse=True)
def _clean_fakes(fresh_fakes: tuple[FakeUpstream, FakeUpstream]) -> tuple[FakeUpstream, FakeUpstream]:
    """Every test here starts from well-behaved fakes with clean counters (and leaves them so)."""
    return fresh_fakes


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    return directory


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``launch(make_config, name="gw", env=None)``: start a gateway whose config is ``make_config(port)``;
    every gateway started is stopped at teardown."""
    started: list[GatewayProcess] = []

    def start(make_config: Callable[[int], str], name: str = "gw", env: dict[str, str] | None = None) -> GatewayProcess:
        port = free_port()
        gateway = start_gateway(tmp_path / name, make_config(port), port, env)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A ``limits.key_prefix`` of this test's own on the shared Redis; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as e:  # the suite's `make test` starts it (scripts/ensure-redis)
        client.close()
        pytest.fail(f"these tests need Redis at {REDIS_URL}: {e!r}")
    prefix = f"pol-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
