"""The ledger: rows added without I/O, written in one batch, kept while Redis is away, bounded, expiring."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis_procs import SHARED_URL, RedisServer

from gateway.spend.ledger import OTHER, SEP, Entry, Ledger, MemoryTables, end_user_id, expiry
from gateway.state.ledger import RedisLedger
from gateway.state.store import KeyLayout, Scripts

DAY, MONTH = "2026-12-01", "2026-12"


def entry(usd: float | None = 0.25, end_user: str | None = "alice", key: str = "team-a") -> Entry:
    return Entry(key, "premium", end_user, "acct/gpt-4o", "agent", usd)


async def tables_of(ledger: Ledger, window: str, *names: str) -> list[dict[str, float]]:
    return await ledger.tables.tables(window, list(names))


async def test_spend_is_counted_by_every_table_in_both_windows() -> None:
    ledger = Ledger(MemoryTables())
    ledger.add(entry(0.25), (DAY, MONTH))
    ledger.add(entry(0.5, "bob"), (DAY, MONTH))
    ledger.add(entry(1.0, None, key="team-b"), (DAY, MONTH))
    await ledger.flush()
    for window in (DAY, MONTH):
        key, n, tier, deployment, route = await tables_of(
            ledger, window, "key:usd", "key:n", "tier:usd", "deployment:usd", "route:usd"
        )
        assert key == {"team-a": 0.75, "team-b": 1.0} and n == {"team-a": 2, "team-b": 1}
        assert tier == {"premium": 1.75} and deployment == {"acct/gpt-4o": 1.75} and route == {"agent": 1.75}
    users, everyone = await tables_of(ledger, DAY, "user:team-a:usd", "users:usd")
    assert users == {"alice": 0.25, "bob": 0.5}
    assert everyone == {f"team-a{SEP}alice": 0.25, f"team-a{SEP}bob": 0.5}
    assert await ledger.tables.top(DAY, "users:usd", 1) == [(f"team-a{SEP}bob", 0.5)]


async def test_unpriced_requests_are_counted_apart_never_as_free() -> None:
    ledger = Ledger(MemoryTables())
    ledger.add(entry(None), (DAY,))
    await ledger.flush()
    unpriced, key_n, key_usd = await tables_of(ledger, DAY, "unpriced:n", "key:n", "key:usd")
    assert (unpriced, key_n, key_usd) == ({"acct/gpt-4o": 1.0}, {"team-a": 1.0}, {"team-a": 0.0})


async def test_writes_are_batched_off_the_request_path() -> None:
    ledger = Ledger(MemoryTables(), interval=0.05)
    for _ in range(100):
        ledger.add(entry(0.01), (DAY,))
    assert await tables_of(ledger, DAY, "key:usd") == [{}]  # nothing written yet: adding does no I/O
    await asyncio.sleep(0.2)
    (key,) = await tables_of(ledger, DAY, "key:usd")
    assert key == {"team-a": pytest.approx(1.0)}


async def test_redis_tables_expire_with_their_window(prefix: str, shared_client: aioredis.Redis) -> None:
    client = aioredis.Redis.from_url(SHARED_URL)
    ledger = Ledger(RedisLedger(client, Scripts(client), KeyLayout(prefix)))
    ledger.add(entry(0.25), (DAY, MONTH))
    await ledger.flush()
    layout = KeyLayout(prefix)
    assert await shared_client.zscore(layout.spend(DAY, "user:team-a:usd"), "alice") == 0.25
    assert await shared_client.pexpiretime(layout.spend(DAY, "key:usd")) == int(expiry(DAY) * 1000)
    assert await shared_client.pexpiretime(layout.spend(MONTH, "key:usd")) == int(expiry(MONTH) * 1000)
    assert await ledger.tables.scores(DAY, "key:n", ["team-a", "nobody"]) == [1.0, 0.0]
    await client.aclose()


async def test_spend_waits_for_redis_and_is_written_once_it_is_back(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    ledger = Ledger(RedisLedger(client, Scripts(client), KeyLayout("ledger")), interval=0.05)
    redis_server.kill()
    ledger.add(entry(0.25), (DAY,))
    await ledger.flush()  # fails: kept
    ledger.add(entry(0.5), (DAY,))
    redis_server.start()
    for _ in range(100):  # the background flush retries by itself
        await asyncio.sleep(0.05)
        if (await ledger.tables.tables(DAY, ["key:usd"]))[0]:
            break
    assert await ledger.tables.tables(DAY, ["key:usd", "key:n"]) == [{"team-a": 0.75}, {"team-a": 2.0}]
    await ledger.close()
    await client.aclose()


async def test_end_users_are_bounded_while_waiting() -> None:
    ledger = Ledger(MemoryTables(), max_pending=2)  # rows waiting for the next flush
    for n in range(4):
        ledger.add(entry(1.0, f"user-{n}"), (DAY,))
    await ledger.flush()
    (users, keys) = await tables_of(ledger, DAY, "user:team-a:usd", "key:usd")
    assert users == {"user-0": 1.0, "user-1": 1.0, OTHER: 2.0}  # the flood shares one row
    assert keys == {"team-a": 4.0}  # and no spend is lost


def test_long_end_user_ids_are_shortened_and_kept_apart() -> None:
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert len(end_user_id(a)) == 64 and end_user_id(a) != end_user_id(b)
    assert end_user_id("alice") == "alice"
