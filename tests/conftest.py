"""End-to-end fixtures: fake providers on loopback, and the real gateway process in front of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import UPSTREAM_KEY, GatewayProcess, config_text, free_port, start_gateway

from gateway import tokens
from gateway.fake.testing import FakeUpstream

pytest_plugins = ["redis_fixtures"]


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture(scope="session")
def fake2() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream, fake2: FakeUpstream
) -> Iterator[GatewayProcess]:
    port = free_port()
    process = start_gateway(tmp_path_factory.mktemp("gateway"), config_text(port, fake.url, fake2.url), port)
    yield process
    process.stop()


@pytest.fixture
def fresh_fakes(fake: FakeUpstream, fake2: FakeUpstream) -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    """Each test starts from well-behaved providers and clean counters."""
    fake.reset()
    fake2.reset()
    yield fake, fake2
    fake.reset()
    fake2.reset()


@pytest.fixture
def fresh_encoding() -> Iterator[None]:
    tokens.encoding.cache_clear()
    tokens._start_loading.cache_clear()  # a process loads the encoding once: start each test from none
    yield
    tokens.encoding.cache_clear()
    tokens._start_loading.cache_clear()
