"""The lean admission connection: pipelined calls, replies matched in order, dropped replies of callers
that gave up, script-cache misses, and reconnecting after a loss.

Tests that keep Redis busy with a script do it on a private redis-server: a busy script blocks every
client of its server, and the shared one serves other tests with 50 ms deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError
from redis_procs import RedisServer

from gateway.limits.model import BucketSpec, Candidate
from gateway.limits.redis_limiter import encode_admit
from gateway.state.pipe import Pipe, pack
from gateway.state.store import KeyLayout, Scripts

URL = "redis://127.0.0.1:6379/0"


async def written(pipe: Pipe) -> None:
    """Until every call issued so far has gone out on the connection (no sleep guessing how long that takes)."""
    protocol = pipe._protocol
    assert protocol is not None
    while protocol._out:
        await asyncio.sleep(0)


async def closed(pipe: Pipe) -> None:
    """Until the connection is gone (``connection_lost`` has run)."""
    while pipe._protocol is not None and pipe._protocol.transport is not None:
        await asyncio.sleep(0.001)


async def answered(pipe: Pipe) -> None:
    """Until no reply is outstanding: late replies of callers that gave up have arrived and been dropped."""
    while pipe._protocol is not None and pipe._protocol.waiting:
        await asyncio.sleep(0.005)


def busy(ms: int) -> bytes:
    """A script that keeps Redis busy ~``ms`` milliseconds, so a caller can give up before the reply comes."""
    return (
        b"local t = redis.call('TIME') "
        b"local function elapsed() local n = redis.call('TIME') "
        b"return (n[1] - t[1]) * 1000000 + n[2] - t[2] end "
        b"while elapsed() < %d do end return 1" % (ms * 1000)
    )


@pytest.fixture
async def pipe() -> AsyncIterator[Pipe]:
    opened = Pipe(URL)
    yield opened
    opened.close()


def test_pack_is_resp() -> None:
    assert pack(b"SET", b"k", b"v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert Pipe.supports(URL) and not Pipe.supports("rediss://h:6379") and not Pipe.supports(URL + "?cluster=true")


async def test_concurrent_calls_get_their_own_replies(pipe: Pipe) -> None:
    replies = await asyncio.gather(*(pipe.call(b"ECHO", str(i).encode()) for i in range(200)))
    assert replies == [str(i).encode() for i in range(200)]


async def test_a_caller_that_gave_up_does_not_shift_the_replies(redis_server: RedisServer) -> None:
    pipe = Pipe(redis_server.url)
    try:
        await pipe.call(b"PING")
        slow = asyncio.ensure_future(pipe.call(b"EVAL", busy(20), b"0"))
        await asyncio.sleep(0)  # the call is issued ...
        await written(pipe)  # ... and sent: its reply will come
        slow.cancel()
        assert await pipe.call(b"ECHO", b"after") == b"after"
        assert slow.cancelled()
    finally:
        pipe.close()


async def test_errors_and_reconnect(pipe: Pipe) -> None:
    with pytest.raises(NoScriptError):
        await pipe.call(b"EVALSHA", b"0" * 40, b"0")
    with pytest.raises(ResponseError):
        await pipe.call(b"NOSUCHCOMMAND")
    pipe.close()
    await closed(pipe)
    assert await pipe.call(b"PING") == b"PONG"  # a new connection on the next call


async def test_a_call_past_its_deadline_fails_and_the_next_one_is_answered(redis_server: RedisServer) -> None:
    # Deadline and reply far apart (0.1 s, 0.6 s), so that a loaded machine cannot blur them.
    pipe = Pipe(redis_server.url, timeout=0.1)
    try:
        await pipe.call(b"PING")
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await pipe.call(b"EVAL", busy(600), b"0")
        assert asyncio.get_running_loop().time() - started < 0.35  # failed at its deadline, not at the reply
        await answered(pipe)  # the late reply arrives and is dropped
        assert await pipe.call(b"ECHO", b"after") == b"after"
    finally:
        pipe.close()


async def test_a_stall_of_this_process_is_not_blamed_on_redis() -> None:
    """The process stalls past the deadline before a call has gone out: when it runs again the call is written
    and the overdue timer fires in the same turn, and Redis gets a grace of loop time to answer."""
    pipe = Pipe(URL, timeout=0.1)
    try:
        await pipe.call(b"PING")
        asyncio.get_running_loop().call_soon(time.sleep, 0.3)  # before the write the call below queues
        assert await pipe.call(b"ECHO", b"late") == b"late"
    finally:
        pipe.close()


async def test_calls_in_one_turn_of_the_loop_share_one_write(pipe: Pipe) -> None:
    await pipe.call(b"PING")
    protocol = pipe._protocol
    assert protocol is not None and protocol.transport is not None
    writes: list[bytes] = []
    real = protocol.transport.write
    protocol.transport.write = lambda data: (writes.append(bytes(data)), real(data))[1]  # type: ignore[method-assign]
    replies = await asyncio.gather(*(pipe.call(b"ECHO", str(i).encode()) for i in range(5)))
    assert replies == [str(i).encode() for i in range(5)]
    assert writes == [b"".join(pack(b"ECHO", str(i).encode()) for i in range(5))]


async def test_a_script_the_server_lost_is_loaded_again_and_run(redis_server: RedisServer) -> None:
    """``Scripts.run_on``: a NOSCRIPT answer (Redis restarted, its script cache empty) loads the script and sends
    the same command again; the keys' encodings it keeps are the same on every call."""
    client = aioredis.Redis.from_url(redis_server.url)
    scripts, pipe = Scripts(client), Pipe(redis_server.url)
    rpm = BucketSpec("acct:é:rpm", 10, 1, 1, "requests")  # not ASCII: a key's length is counted in bytes
    keys, args = encode_admit(KeyLayout("p"), [Candidate("é/m", "é", (rpm,))], [], "first")
    try:
        await scripts.load()
        assert (await scripts.run_on(pipe, "admit_v7", keys, orjson.dumps(args)))[0] == 0  # admitted
        await client.script_flush()
        assert (await scripts.run_on(pipe, "admit_v7", keys, orjson.dumps(args)))[0] == 0
        assert await client.get("{p}:b2:acct:é:rpm") is not None  # the key as named, charged twice
    finally:
        pipe.close()
        await client.aclose()
