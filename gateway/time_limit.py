"""``time_limit(seconds)``: ``asyncio.timeout`` as a plain ``with`` block, for the request path; and
``stall_aware_limit``, which does not blame the awaited peer for time this process spent without the CPU.

Same contract: when the time runs out the task is cancelled, and the block raises ``TimeoutError`` in place of
the ``CancelledError`` that cancellation caused (a cancellation from elsewhere stays a ``CancelledError``).
Nothing in entering or leaving a time limit awaits, so a synchronous context manager does it without the two
coroutines ``async with`` makes, and with one small object instead of ``asyncio.Timeout``'s state machine.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

# A timer this late found the event loop stalled (a CPU-starved process, or one long callback), and ``GRACE`` of
# loop time lets it read what arrived meanwhile. Waking a task that a reply completed takes a loop turn after the
# read, and a timer due in the same turn as the read runs first: without the grace, a reply that came in time
# would count as none.
LATE = 0.005
GRACE = 0.01


def grace(now: float, due: float, given: int, seconds: float) -> float | None:
    """When a deadline set for ``due`` is checked at ``now`` after ``given`` graces: the end of one more grace
    if the loop was stalled and the graces stay within ``seconds``, else None (the peer is late).

    >>> grace(1.02, 1.0, 0, 0.1), grace(1.001, 1.0, 0, 0.1), grace(1.02, 1.0, 10, 0.1)
    (1.03, None, None)
    """
    return now + GRACE if now - due >= LATE and given * GRACE < seconds else None


class time_limit:  # noqa: N801 (used like asyncio.timeout)
    __slots__ = ("_delay", "_task", "_handle", "_expired", "_cancelling")

    def __init__(self, seconds: float) -> None:
        self._delay = seconds
        self._expired = False

    def __enter__(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("time_limit() is used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = loop.call_at(loop.time() + self._delay, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from error


class stall_aware_limit(time_limit):  # noqa: N801 (used like asyncio.timeout)
    """``time_limit`` for a peer judged by its deadline (Redis): a limit that comes due with the loop stalled
    gives the peer ``GRACE`` more seconds of loop time, again while each check finds the loop late, up to
    ``seconds`` of graces in all (``grace``)."""

    __slots__ = ("_loop", "_due", "_graces")

    def __enter__(self) -> None:
        super().__enter__()
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self._delay
        self._graces = 0

    def _expire(self) -> None:
        until = grace(self._loop.time(), self._due, self._graces, self._delay)
        if until is None:
            super()._expire()
            return
        self._graces += 1
        self._due = until
        self._handle = self._loop.call_at(until, self._expire)
