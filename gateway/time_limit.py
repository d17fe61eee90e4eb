"""``time_limit(seconds)``: ``asyncio.timeout`` as a plain ``with`` block, for the request path.

Same contract: when the time runs out the task is cancelled, and the block raises ``TimeoutError`` in place of
the ``CancelledError`` that cancellation caused (a cancellation from elsewhere stays a ``CancelledError``).
Nothing in entering or leaving a time limit awaits, so a synchronous context manager does it without the two
coroutines ``async with`` makes, and with one small object instead of ``asyncio.Timeout``'s state machine.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


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
