"""Noticing a client that went away, so its upstream request is closed at once, not at the next write.

ASGI servers report a lost connection as ``http.disconnect`` from ``receive()`` once the body has
been read. One watcher task per request waits for it and cancels the task doing the work; the
upstream call inside then unwinds and aiohttp closes that connection. Starlette's own streaming
response only notices on its next ``send``, which for a stalled upstream may be never.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from starlette.types import Message, Receive


class DisconnectGuard:
    """``async with DisconnectGuard(receive) as guard: ...``; afterwards ``guard.disconnected`` says why
    the block ended early (the CancelledError caused by the disconnect is absorbed)."""

    __slots__ = ("_receive", "_task", "_watcher", "disconnected")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[Message] | None = None
        self.disconnected = False

    async def __aenter__(self) -> DisconnectGuard:
        self._task = asyncio.current_task()
        self._watcher = asyncio.ensure_future(self._receive())
        self._watcher.add_done_callback(self._on_message)
        return self

    def _on_message(self, watcher: asyncio.Task[Message]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        if watcher.result().get("type") == "http.disconnect" and self._task is not None:
            self.disconnected = True
            self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._watcher is not None:
            self._watcher.remove_done_callback(self._on_message)
            self._watcher.cancel()
        if self.disconnected and self._task is not None:
            self._task.uncancel()
            return exc_type is asyncio.CancelledError
        return False
