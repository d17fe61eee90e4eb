"""Graceful shutdown: SIGTERM drains before the server stops accepting.

uvicorn installs its own SIGTERM/SIGINT handlers before the app starts; at lifespan start the
gateway wraps them, so in every worker a signal first marks the runtime draining (``/readyz``
answers 503, load balancers stop sending), then after ``drain_delay_seconds`` hands over to
uvicorn, which closes the listener and waits up to ``shutdown_grace_seconds`` for in-flight
requests and streams.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from gateway.runtime import Runtime

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_drain(runtime: Runtime, delay: float) -> Callable[[], None]:
    """Wrap the current handlers; returns a function restoring them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in _SIGNALS}

    def on_signal(sig: int, frame: FrameType | None) -> None:
        handler = previous[sig]
        first = not runtime.draining
        runtime.draining = True
        runtime.metrics.draining.set(1)
        if not callable(handler):
            return
        if first and delay > 0:
            loop.call_soon_threadsafe(loop.call_later, delay, handler, sig, None)
        else:
            handler(sig, frame)

    for sig in _SIGNALS:
        signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, handler)

    return restore
