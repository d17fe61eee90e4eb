"""The virtual loop's handles: asyncio's ``Handle`` and ``TimerHandle``, filled in by the loop itself
(gateway.sim.clock).

A module of their own because mypyc compiles the loop (gateway.compiled) and a compiled class cannot extend
one with ``__slots__``, as asyncio's handles are: these stay Python classes and keep theirs.
"""

from __future__ import annotations

import contextvars
from asyncio import events
from collections.abc import Callable


class Soon(events.Handle):
    """``call_soon``'s handle, filled in by ``call_soon`` itself: no ``__init__`` frame for the two in three
    handles that are a task's wake-up."""

    __slots__ = ()
    _context: contextvars.Context
    _callback: Callable[..., object] | None
    # Read only by debug mode and the base loop's own scheduling, neither of which runs here.
    _loop = _repr = _source_traceback = None

    def cancel(self) -> None:
        self._cancelled = True
        self._callback = self._args = None  # type: ignore[assignment]  # what they hold is freed now


class Timer(events.TimerHandle):
    """``call_at``'s handle: in the loop's heap from birth until it is due (or dropped, once cancelled)."""

    __slots__ = ()
    _context: contextvars.Context
    _callback: Callable[..., object] | None
    _when: float
    _loop = _repr = _source_traceback = None  # as ``Soon``'s (and ``_scheduled``, which it never sets)

    def cancel(self) -> None:
        self._cancelled = True
        self._callback = self._args = None  # type: ignore[assignment]
