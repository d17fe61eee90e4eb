"""Virtual time: an asyncio event loop whose clock is simulated, so the gateway's own coroutines run unchanged.

``VirtualLoop`` is asyncio's base event loop with no I/O at all: when nothing is ready, its clock jumps to the
next timer at once. An hour of ``asyncio.sleep`` (the waiting line), ``asyncio.timeout`` (an attempt's time
limit) and modelled provider latency passes in the time it takes to run the callbacks.

It is built for that load (three timers and a few wake-ups per simulated request, a million requests an hour
at 100 workflows a second), so it keeps the standard loop's semantics with less work per event:

- timers sit in a heap of ``(when, sequence, handle)`` tuples, compared in C (asyncio's own heap compares
  handles by a Python ``__lt__``, a dozen calls per timer); equal times run in the order they were set;
- handles are asyncio's ``Handle`` and ``TimerHandle`` (gateway.sim.handles), filled in by ``call_soon`` and
  ``call_at`` themselves (no ``__init__`` frame, no debug-mode checks);
- ``sleep(delay)`` is the simulator's own wait (a provider's latency, a workflow's think time): a future the
  loop resolves itself when the time comes, without a timer handle or a callback in between;
- one call of ``_run_once`` runs iterations until the loop is stopped, each the standard one: the handles
  ready at its start, and when none are, the timers that are due.

The gateway's request path also reads ``time.monotonic()`` directly (the walk's deadline and attempt
timing, the waiting line's budget, the retry rules' stop), so ``virtual_monotonic`` points that function at
the loop's clock while a simulation runs, and puts the real one back after. ``LocalLimiter`` and ``Health``
take their clock as a parameter and are given the loop's.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar, TypeVarTuple

from gateway.sim.handles import Soon as _Soon
from gateway.sim.handles import Timer as _Timer

Ts = TypeVarTuple("Ts")
T = TypeVar("T")

# No timer fires sooner than this after it is set. On a real clock a turn of the loop takes microseconds, so
# code that sleeps for what is left of a refill (a rounding error, at times: 1e-15 s) always finds the time
# moved on; on a virtual clock it would find the same instant, and try again for ever.
# Final, here and below: compiled code reads these as constants, not from the module's dict on every call.
MIN_STEP: Final = 1e-6
_DUE: Final = 1e-9  # timers this close to the clock are due (asyncio's clock resolution, for time.monotonic)
_COMPACT_OVER: Final = 100  # timers: past this many, and twice what the last rebuild kept, cancelled ones go

_copy_context: Final = contextvars.copy_context
_new: Final = object.__new__
_heappush: Final = heapq.heappush
_heappop: Final = heapq.heappop
_Future: Final = asyncio.Future


class Deadlock(Exception):  # not a RuntimeError: mypyc compiles no subclass of that
    """Nothing is ready and no timer is set: every coroutine waits for something that cannot happen."""


class VirtualLoop(asyncio.BaseEventLoop):
    """``time()`` is simulated seconds from 0; waiting costs no real time."""

    _ready: deque[Any]  # the base loop's, set by its constructor: handles (their callbacks are private)
    _stopping: bool

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._timers: list[tuple[float, int, Any]] = []  # (when, sequence, _Timer | Future)
        self._compact_over = _COMPACT_OVER
        self._sequence = itertools.count().__next__
        # Read about seventeen times a request (every clock the gateway holds is this one), and asked by every
        # Future made: both as C callables, which make no Python frame (``time`` below says what it returns).
        self.time = functools.partial(getattr, self, "_now")  # type: ignore[method-assign]
        self.get_debug = bool  # type: ignore[method-assign]  # bool() is False

    def time(self) -> float:
        return self._now

    def call_soon(
        self, callback: Callable[[*Ts], object], *args: *Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = _new(_Soon)
        handle._context = context if context is not None else _copy_context()
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self._now + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        soonest = self._now + MIN_STEP
        handle = _new(_Timer)
        handle._context = context if context is not None else _copy_context()
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._when = when = when if when > soonest else soonest
        _heappush(self._timers, (when, self._sequence(), handle))
        return handle

    def create_task(  # type: ignore[override]  # the base's signature, with the coroutine's type spelled out
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None, context: contextvars.Context | None = None
    ) -> asyncio.Task[T]:
        """The task, made directly: the base's checks are for a closed loop and a task factory, neither of which
        a simulation has (one task a workflow, and the gateway's own)."""
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def sleep(self, delay: float) -> asyncio.Future[None]:
        """``await loop.sleep(delay)``: ``asyncio.sleep`` for the simulator's own waits, cheaper. Cancelling
        the awaiting task cancels the future, which the loop then leaves alone."""
        future: asyncio.Future[None] = _Future(loop=self)
        _heappush(self._timers, (self._now + (delay if delay > MIN_STEP else MIN_STEP), self._sequence(), future))
        return future

    def _run_once(self) -> None:
        ready, heap = self._ready, self._timers
        popleft = ready.popleft
        while not self._stopping:
            if not ready:  # move the clock to the next timer and make everything due then ready
                if len(heap) > self._compact_over:
                    self._compact()
                if not heap:
                    raise Deadlock("the simulation has nothing left to run but is not finished")
                # Every timer is set at least MIN_STEP ahead and those this close are taken with it: the next
                # one is always later than the clock.
                self._now = now = heap[0][0]
                due = now + _DUE
                while heap and heap[0][0] < due:
                    item = _heappop(heap)[2]
                    if type(item) is _Future:
                        if not item.done():
                            item.set_result(None)  # its task's wake-up: call_soon
                    elif not item._cancelled:
                        ready.append(item)
                if not ready:
                    continue
            for _ in range(len(ready)):
                handle = popleft()
                if handle._cancelled:
                    continue
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self.call_exception_handler(
                        {"message": f"Exception in callback {handle._callback!r}", "exception": exc, "handle": handle}
                    )

    def _compact(self) -> None:
        """Drop the cancelled timers (a time limit is set and cancelled on every attempt), in place."""
        heap = self._timers
        heap[:] = [entry for entry in heap if type(entry[2]) is _Future or not entry[2]._cancelled]
        heapq.heapify(heap)
        self._compact_over = max(_COMPACT_OVER, 2 * len(heap))

    def close(self) -> None:
        super().close()
        self._timers.clear()

    def _process_events(self, event_list: list[Any]) -> None:  # no I/O: nothing ever arrives
        return None

    def _write_to_self(self) -> None:  # call_soon_threadsafe's wake-up: the loop never blocks
        return None


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
