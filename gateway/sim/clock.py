"""Virtual time: an asyncio event loop whose clock is simulated, so the gateway's own coroutines run unchanged.

``VirtualLoop`` is the standard selector event loop with a selector that performs no I/O: when nothing is
ready, the loop asks it to wait until the next timer, and it moves the clock there at once instead. An hour
of ``asyncio.sleep`` (the waiting line), ``asyncio.timeout`` (an attempt's time limit) and modelled provider
latency passes in the time it takes to run the callbacks. Nothing in the simulation touches a socket.

The gateway's request path also reads ``time.monotonic()`` directly (the walk's deadline and attempt
timing, the waiting line's budget, the retry rules' stop), so ``virtual_monotonic`` points that function at
the loop's clock while a simulation runs, and puts the real one back after. ``LocalLimiter`` and ``Health``
take their clock as a parameter and are given the loop's.
"""

from __future__ import annotations

import asyncio
import contextvars
import selectors
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVarTuple

Ts = TypeVarTuple("Ts")


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is set: every coroutine waits for something that cannot happen."""


class _NoIO(selectors.DefaultSelector):
    """Registers the loop's self-pipe like any selector, but ``select`` is where virtual time passes."""

    def __init__(self) -> None:
        super().__init__()
        self.now: float = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("the simulation has nothing left to run but is not finished")
        if timeout > 0:
            self.now += timeout
        return []


# No timer fires sooner than this after it is set. On a real clock a turn of the loop takes microseconds, so
# code that sleeps for what is left of a refill (a rounding error, at times: 1e-15 s) always finds the time
# moved on; on a virtual clock it would find the same instant, and try again for ever.
MIN_STEP = 1e-6


class VirtualLoop(asyncio.SelectorEventLoop):
    """``time()`` is simulated seconds from 0; waiting costs no real time."""

    def __init__(self) -> None:
        self._clock = _NoIO()
        super().__init__(self._clock)

    def time(self) -> float:
        return self._clock.now

    def call_at(
        self,
        when: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return super().call_at(max(when, self._clock.now + MIN_STEP), callback, *args, context=context)


@contextmanager
def virtual_monotonic(clock: Callable[[], float]) -> Iterator[None]:
    """``time.monotonic`` reads ``clock`` inside the block (one process-wide function: a simulation runs alone
    in its process, as ``gateway simulate`` does, or in a test that runs nothing else meanwhile)."""
    real = time.monotonic
    time.monotonic = clock
    try:
        yield
    finally:
        time.monotonic = real


def run(main: Callable[[VirtualLoop], Any]) -> Any:
    """``main(loop)``'s coroutine to completion on a fresh virtual loop, with ``time.monotonic`` virtual."""
    loop = VirtualLoop()
    try:
        with virtual_monotonic(loop.time):
            return loop.run_until_complete(main(loop))
    finally:
        loop.close()
