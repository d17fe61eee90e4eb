"""Two replicas (``Health`` + ``HealthSync`` each) sharing deployment health through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis_procs import SHARED_URL, RedisServer, free_port

from gateway.config.model import CircuitSettings
from gateway.routing.health import Health
from gateway.routing.health_sync import HealthSync

DEP = "openai-main/gpt-4o"
SETTINGS = CircuitSettings(failure_threshold=3, error_rate_threshold=0.5, min_requests=10, open_seconds=0.4)
DEADLINE = 0.05  # for the failure tests; the others allow more, so a busy machine does not fail them

Replica = tuple[Health, HealthSync]
Make = Callable[..., Replica]


@pytest.fixture
async def make(prefix: str, shared_client: aioredis.Redis) -> AsyncIterator[Make]:
    """Replicas on the shared Redis under the test's prefix (``shared_client`` deletes the keys after)."""
    made: list[HealthSync] = []

    def factory(replica: str, url: str = SHARED_URL, deadline: float = 0.5, **options: float) -> Replica:
        health = Health(SETTINGS)
        sync = HealthSync(health, url, replica, prefix=prefix, deadline=deadline, **options)
        made.append(sync)
        return health, sync

    yield factory
    for sync in made:
        await sync.close()


def outcome(health: Health, ok: bool, latency: float = 0.1, ttft: float | None = None) -> None:
    health.started(DEP)
    health.finished(DEP, ok, latency, ttft)


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for a state rather than for a guessed time; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.01)


async def quickest(calls: list[Callable[[], Awaitable[None]]]) -> float:
    """The shortest of several timed calls, one after the other: a bound on how long a path waits holds for the
    quickest of a few tries on a loaded machine, where one try may lose the CPU for tens of milliseconds."""
    times = []
    for call in calls:
        start = time.monotonic()
        await call()
        times.append(time.monotonic() - start)
    return min(times)


async def test_failures_on_one_replica_open_the_circuit_on_the_other(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a"), make("b")
    for _ in range(3):
        outcome(a, False)
    assert a.snapshot().state(DEP).circuit == "open"  # at once, before any sync
    assert b.allow(DEP)
    await sync_a.sync_now()
    await sync_b.sync_now()
    assert b.snapshot().state(DEP).circuit == "open"
    assert not b.allow(DEP)


async def test_counts_add_up_across_replicas(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a"), make("b")
    outcome(a, False)
    outcome(a, False)
    await sync_a.sync_now()
    await sync_b.sync_now()
    outcome(b, False)  # the fleet's third failure in a row: B opens on its own
    assert b.snapshot().state(DEP).circuit == "open"
    await sync_b.sync_now()
    await sync_a.sync_now()
    assert a.snapshot().state(DEP).circuit == "open"


async def test_error_rate_over_the_fleets_window(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a"), make("b")
    for ok in (False, False, True, False, False, True):
        outcome(a, ok)
    for ok in (False, True, False, True, False, True):
        outcome(b, ok)
    await sync_a.sync_now()
    assert a.snapshot().state(DEP).circuit == "closed"
    await sync_b.sync_now()  # 12 attempts, 7 failed: neither replica had min_requests alone
    assert b.snapshot().state(DEP).circuit == "open"
    assert b.snapshot().state(DEP).error_rate == pytest.approx(7 / 12)


async def test_half_open_is_shared_and_a_probe_decides_for_everyone(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a"), make("b")
    opened = time.monotonic()
    for _ in range(3):
        outcome(a, False)
    await sync_a.sync_now()
    await sync_b.sync_now()
    await sync_a.sync_now()  # A now follows Redis's opening time, as B does
    wait_a, wait_b = a.snapshot().state(DEP).retry_in, b.snapshot().state(DEP).retry_in
    # What is left of open_seconds (0.4): less what the syncs took, however long a busy machine made them.
    assert 0.4 - (time.monotonic() - opened) - 0.01 <= wait_b <= 0.4 and abs(wait_a - wait_b) < 0.05
    await eventually(lambda: a.snapshot().state(DEP).circuit == b.snapshot().state(DEP).circuit == "half_open")

    assert a.allow(DEP)
    reopened = time.monotonic()
    outcome(a, False)  # a failed probe re-opens it everywhere
    await sync_a.sync_now()
    await sync_b.sync_now()
    assert b.snapshot().state(DEP).circuit == "open"
    assert b.snapshot().state(DEP).retry_in >= 0.4 - (time.monotonic() - reopened) - 0.01
    await eventually(lambda: b.snapshot().state(DEP).circuit == "half_open")

    assert b.allow(DEP)
    outcome(b, True)  # a successful probe closes it everywhere
    assert b.snapshot().state(DEP).circuit == "closed"
    await sync_b.sync_now()
    await sync_a.sync_now()
    assert a.snapshot().state(DEP).circuit == "closed"
    assert a.snapshot().state(DEP).error_rate == 0.0  # the failures that opened it are forgotten


async def test_inflight_is_summed_across_replicas(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a"), make("b")
    for _ in range(2):
        a.started(DEP)
    b.started(DEP)
    await sync_a.sync_now()
    await sync_b.sync_now()
    assert b.snapshot().state(DEP).inflight == 3
    b.started(DEP)  # counted locally at once
    assert b.snapshot().state(DEP).inflight == 4
    a.finished(DEP, True, 0.1, None)
    a.finished(DEP, True, 0.1, None)
    await sync_a.sync_now()
    await sync_b.sync_now()
    assert b.snapshot().state(DEP).inflight == 2
    assert a.snapshot().state(DEP).inflight == 1  # B had sent one when A synced


async def test_latency_averages_are_shared(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a"), make("b")
    outcome(a, True, latency=0.1, ttft=0.05)
    outcome(a, True, latency=0.2)
    await sync_a.sync_now()
    await sync_b.sync_now()
    shared = b.snapshot().state(DEP)
    assert shared.latency_ms == pytest.approx(150.0)  # the first batch starts at its mean
    assert shared.ttft_ms == pytest.approx(50.0)
    outcome(b, True, latency=0.3)
    await sync_b.sync_now()
    await sync_a.sync_now()
    assert a.snapshot().state(DEP).latency_ms == pytest.approx(150.0 * 0.8 + 300.0 * 0.2)


async def test_one_sync_is_one_round_trip(
    redis_server: RedisServer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, sync = make("a", url=redis_server.url)
    await sync.sync_now()  # connects (HELLO) and loads the script
    observer = aioredis.Redis.from_url(redis_server.url)
    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        await send(self, command, check_health)

    try:
        await observer.config_resetstat()
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
        outcome(a, False)
        a.started(DEP)
        await sync.sync_now()
        monkeypatch.undo()
        assert len(sent) == 1 and sent[0].startswith(b"*") and b"EVALSHA" in sent[0]
        stats = await observer.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1 and "cmdstat_script|load" not in stats
        assert sync.round_trips == 2
    finally:
        await observer.aclose()


async def test_keys_have_ttls_and_share_one_slot(prefix: str, shared_client: aioredis.Redis, make: Make) -> None:
    a, sync = make("a")
    outcome(a, True)
    a.started(DEP)
    await sync.sync_now()
    keys = [k async for k in shared_client.scan_iter(match="{" + prefix + "}:*")]
    assert sorted(k.decode() for k in keys) == [f"{{{prefix}}}:h:v1:{n}" for n in ("deps", "inflight", "replicas")]
    assert len({key_slot(k) for k in keys}) == 1
    for key in keys:
        assert 0 < await shared_client.pttl(key) <= 2 * (30.0 + 0.4) * 1000


async def test_redis_down_keeps_local_state_and_recovers(
    redis_server: RedisServer, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    (a, sync_a), (b, sync_b) = (make(r, url=redis_server.url, deadline=DEADLINE) for r in ("a", "b"))
    await sync_a.sync_now()
    await sync_b.sync_now()

    with caplog.at_level(logging.WARNING, logger="gateway.routing.health_sync"):
        redis_server.pause()  # a hung Redis costs one deadline per sync (each replica's first one, and the next)
        assert await quickest([sync_a.sync_now, sync_b.sync_now, sync_a.sync_now]) < DEADLINE + 0.05
        assert not sync_a.connected and not sync_b.connected
        redis_server.kill()
        for _ in range(3):
            await sync_a.sync_now()
    assert len([r for r in caplog.records if "replica a:" in r.getMessage()]) == 1  # once per outage
    await sync_b.sync_now()  # B has noticed too (and dropped its pooled connection)

    for _ in range(3):
        outcome(a, False)  # local state still decides
    assert not a.allow(DEP)

    redis_server.start()  # same port, empty: no state, no script
    await sync_a.sync_now()
    assert sync_a.connected
    await sync_b.sync_now()
    assert b.snapshot().state(DEP).circuit == "open"  # the opening made during the outage reached the fleet


async def test_on_a_cluster(cluster_url: str) -> None:
    a, b = Health(SETTINGS), Health(SETTINGS)
    sync_a = HealthSync(a, cluster_url, "a", prefix="hc", deadline=0.5)
    sync_b = HealthSync(b, cluster_url, "b", prefix="hc", deadline=0.5)
    try:
        for _ in range(3):
            outcome(a, False)
        await sync_a.sync_now()
        await sync_b.sync_now()
        assert sync_a.connected and sync_b.connected
        assert b.snapshot().state(DEP).circuit == "open"
    finally:
        await sync_a.close()
        await sync_b.close()


async def test_start_with_no_redis_is_bounded_and_quiet(make: Make) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    (health, sync), (_, other), (_, third) = (make(r, url=url, deadline=DEADLINE) for r in "abc")
    assert await quickest([sync.start, other.start, third.start]) < DEADLINE + 0.05
    assert not sync.connected
    outcome(health, True)
    assert health.snapshot().state(DEP).circuit == "closed"


async def test_background_task_syncs_by_itself(make: Make) -> None:
    (a, sync_a), (b, sync_b) = make("a", interval=0.05), make("b", interval=0.05)
    await sync_a.start()
    await sync_b.start()
    for _ in range(3):
        outcome(a, False)
    await eventually(lambda: b.snapshot().state(DEP).circuit == "open")
    await eventually(lambda: sync_a.round_trips >= 3)  # and it goes on syncing


async def test_close_ends_the_loop_even_if_a_cancellation_is_lost(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    _, sync = make("a", interval=0.01)
    await sync.start()
    inside = asyncio.Event()

    async def swallowing() -> None:  # what Python 3.11's wait_for inside redis-py does now and then
        inside.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)

    monkeypatch.setattr(sync, "sync_now", swallowing)
    await asyncio.wait_for(inside.wait(), 2.0)  # the loop is in a sync when close() cancels it
    await asyncio.wait_for(sync.close(), 1.0)


async def test_without_redis_it_does_nothing() -> None:
    health = Health(SETTINGS)
    sync = HealthSync(health, "", "a")
    await sync.start()
    await sync.sync_now()
    await sync.close()
    assert sync.round_trips == 0
