"""A small open-loop load generator: a fixed request rate, spread round-robin over gateways.

Requests are started on schedule whether or not earlier ones have finished (open loop, so a slow
gateway cannot quietly lower the offered load), with a cap on requests in flight so a stuck system
cannot make the generator grow without bound. Every run stops by itself: after ``duration`` no new
request starts, and the ones still running get ``drain`` seconds before they are cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Outcome:
    """One request as the client saw it."""

    index: int
    target: str
    sent_at: float  # time.monotonic() when it started
    latency: float  # seconds to the complete answer (the last stream event for streams)
    status: int  # HTTP status; 0 when the request failed without one
    headers: httpx.Headers | None = None
    events: int = 0  # streams: data events received, [DONE] excluded
    done: bool = False  # streams: [DONE] arrived
    error: str | None = None


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    last_sent: float = 0.0  # when the last request that completed was started
    finished: float = 0.0
    dropped: int = 0  # not started because too many were in flight
    cancelled: int = 0  # still running when the drain time ran out
    burst: int = 0  # requests sent in the opening burst
    max_lag: float = 0.0  # seconds the steady schedule ran late at worst (the generator kept up if small)

    @property
    def offered(self) -> int:
        return len(self.outcomes) + self.dropped + self.cancelled

    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    def count(self, status: int) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def throttled_without_retry_after(self) -> int:
        return sum(
            1 for o in self.outcomes if o.status == 429 and (o.headers is None or "retry-after" not in o.headers)
        )


Send = Callable[[httpx.AsyncClient, str, int], Awaitable[Outcome]]


def json_call(key: str, body: Callable[[int], dict[str, Any]]) -> Send:
    """A non-streaming chat completion; ``body(i)`` gives request i's body."""

    async def send(client: httpx.AsyncClient, base_url: str, index: int) -> Outcome:
        started = time.monotonic()
        response = await client.post(
            f"{base_url}/chat/completions", json=body(index), headers={"authorization": f"Bearer {key}"}
        )
        await response.aread()
        return Outcome(index, base_url, started, time.monotonic() - started, response.status_code, response.headers)

    return send


def stream_call(key: str, body: Callable[[int], dict[str, Any]]) -> Send:
    """A streaming chat completion read to its end; ``body(i)`` must set ``stream: true``."""

    async def send(client: httpx.AsyncClient, base_url: str, index: int) -> Outcome:
        started = time.monotonic()
        headers = {"authorization": f"Bearer {key}"}
        events, done = 0, False
        async with client.stream("POST", f"{base_url}/chat/completions", json=body(index), headers=headers) as r:
            if r.status_code == 200:
                async for line in r.aiter_lines():
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: "):
                        events += 1
            else:
                await r.aread()
            return Outcome(index, base_url, started, time.monotonic() - started, r.status_code, r.headers, events, done)

    return send


async def _guarded(send: Send, client: httpx.AsyncClient, target: str, index: int) -> Outcome:
    started = time.monotonic()
    try:
        return await send(client, target, index)
    except Exception as e:  # transport errors and anything unexpected: a failed request, not a crash
        return Outcome(index, target, started, time.monotonic() - started, 0, error=f"{type(e).__name__}: {e}")


async def run(
    targets: list[str],
    send: Send,
    *,
    rate: float,
    duration: float,
    burst: int = 0,
    burst_send: Send | None = None,
    burst_concurrency: int = 32,
    max_in_flight: int = 200,
    timeout: float = 15.0,
    drain: float = 20.0,
) -> Result:
    """Optionally ``burst`` requests as fast as ``burst_concurrency`` allows (``burst_send``, default
    ``send``), then ``rate`` requests per second for ``duration`` seconds; request i goes to
    ``targets[i % len(targets)]``."""
    result = Result()
    limits = httpx.Limits(max_connections=max_in_flight + burst_concurrency, max_keepalive_connections=64)
    tasks: set[asyncio.Task[Outcome]] = set()
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        try:
            result.started = time.monotonic()
            index = 0
            if burst:
                gate = asyncio.Semaphore(burst_concurrency)
                first = burst_send or send

                async def limited(i: int) -> Outcome:
                    async with gate:
                        return await _guarded(first, client, targets[i % len(targets)], i)

                done = await asyncio.gather(*(limited(i) for i in range(burst)))
                result.outcomes.extend(done)
                result.burst = index = burst
            steady_start = time.monotonic()
            n = 0
            while True:
                due = steady_start + n / rate
                if due - steady_start >= duration:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                result.max_lag = max(result.max_lag, time.monotonic() - due)
                if len(tasks) >= max_in_flight:
                    result.dropped += 1
                else:
                    task = asyncio.create_task(_guarded(send, client, targets[index % len(targets)], index))
                    tasks.add(task)
                    task.add_done_callback(lambda t: _collect(t, tasks, result))
                index += 1
                n += 1
            if tasks:
                await asyncio.wait(set(tasks), timeout=drain)
        finally:  # also when the caller cancels the run: no request outlives it
            for task in list(tasks):
                task.cancel()
                result.cancelled += 1
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
    result.finished = time.monotonic()
    result.outcomes.sort(key=lambda o: o.index)
    result.last_sent = max((o.sent_at for o in result.outcomes), default=result.started)
    return result


def _collect(task: asyncio.Task[Outcome], tasks: set[asyncio.Task[Outcome]], result: Result) -> None:
    tasks.discard(task)
    if not task.cancelled():
        result.outcomes.append(task.result())
