"""One JSON line per request: who, what, where it went, how it went. Never prompt text or secrets.

Logging never waits for stdout. A line is formatted where it is logged (orjson, about a microsecond) and
put on a bounded queue; one writer thread takes the lines in batches, redacts every configured secret by
value (``errors.redact``), and writes them in pieces of at most ``PIPE_BUF`` bytes that end at a line's
end, so the lines of several workers sharing one pipe never interleave. When the queue is full (stdout
is not being read) a line is dropped and counted (``on_drop``: ``gateway_access_log_dropped_total``);
``close`` flushes what is queued.

The logger ``configure`` returns is the gateway's one log: the access line of every request, lifecycle
events, and warnings. Its calls skip the ``LogRecord`` machinery (about 5 µs of the ~8 µs a standard logger
call costs); the standard loggers under ``gateway`` and the HTTP server's per-connection warnings reach the
same writer.

Lifecycle events are lines with a stable ``event`` field (``msg`` stays human), written whether or not
access lines are on, so log queries can rely on them (``{...} | json | event="circuit_opened"``):

    start              info     a worker is ready: pid, host, port, workers, limiter, policy, tracing, code
                                (compiled or pure Python, and why: gateway.compiled)
    policy_reloaded    info     reason (file change, SIGHUP, admin), from, to (policy versions)
    policy_rejected    error    reason, errors (file:line), serving (the version kept)
    limiter_degraded   warning  Redis failed: limits run on local shares (error)
    limiter_recovered  info     limits are back on Redis
    circuit_opened     warning  deployment (a deployment is out of normal service)
    circuit_half_open  info     deployment (probes are let through)
    circuit_closed     info     deployment
    shutdown           info     SIGTERM or SIGINT: /readyz turns 503, the drain begins (drain_delay_seconds)
    stopped            info     the worker closed its pools and state (uptime_seconds)

Layers below this module (the limiter, the policy store) log them through their loggers with the same
``{"event": ...}`` fields; ``event`` is the one way to write them from here.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import orjson

from gateway.errors import redact

LOGGER = "gateway.access"
_BATCH = 512  # lines per wake-up of the writer, at most: bounds the time it holds the GIL to redact
_LEVELS = MappingProxyType({10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"})


class LineWriter:
    """A bounded queue of lines and the thread that writes them to ``fd``."""

    def __init__(self, fd: int, capacity: int, secrets: tuple[str, ...], on_drop: Callable[[], None]) -> None:
        self._fd = fd
        self._capacity = capacity
        # Lines are JSON: a secret holding a quote or a backslash appears escaped, so both forms are redacted.
        escaped = (orjson.dumps(s)[1:-1].decode() for s in secrets if s)
        self._secrets = tuple(dict.fromkeys([*(s for s in secrets if s), *escaped]))
        self._on_drop = on_drop
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="gateway-log-writer", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        """Queue one line (without its newline); never blocks."""
        if self._queue.qsize() >= self._capacity:
            self._on_drop()
            return
        self._queue.put(line)

    def close(self, timeout: float) -> None:
        """Write what is queued, then stop; gives up after ``timeout`` seconds (stdout may never drain)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        pending = self._queue
        while True:
            batch = [pending.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            lines = [line for line in batch if line is not None]
            piece: list[bytes] = []
            size = 0
            for line in lines:
                if piece and size + len(line) >= select.PIPE_BUF:
                    self._write(piece)
                    piece, size = [], 0
                piece.append(line)
                size += len(line) + 1
            if piece:
                self._write(piece)
            if len(lines) < len(batch):
                return

    def _write(self, lines: list[bytes]) -> None:
        data = redact(b"\n".join(lines).decode() + "\n", self._secrets).encode()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:  # stdout is gone (closed pipe): these lines are lost, and counted
            for _ in lines:
                self._on_drop()


def _message_and_fields(msg: object, args: Any) -> tuple[str, Mapping[str, Any] | None]:
    """``log.info("request", {fields})`` logs the fields as JSON keys; ``log.warning("x %s", y)`` formats."""
    if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], Mapping):
        return str(msg), args[0]
    if isinstance(args, Mapping):
        return str(msg), args
    if args:
        try:
            return str(msg) % args, None
        except (TypeError, ValueError):
            return f"{msg} {args!r}", None
    return str(msg), None


def _traceback(exc_info: Any) -> str | None:
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        return "".join(traceback.format_exception(exc_info))
    if not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    return "".join(traceback.format_exception(*exc_info)) if exc_info[0] is not None else None


def _line(
    ts: float, level: str, msg: str, fields: Mapping[str, Any] | None, exc: str | None, logger: str | None
) -> bytes:
    line: dict[str, Any] = {"ts": round(ts, 3), "level": level, "msg": msg}
    if logger is not None:
        line["logger"] = logger
    if exc is not None:
        line["exc"] = exc
    if fields:
        line.update(fields)
    return orjson.dumps(line, default=str)


class JSONLogger(logging.Logger):
    """The gateway's log: every call is one JSON line on the writer. Below warning, only access lines
    (when ``access``) and lifecycle events (always) are written."""

    def __init__(self, writer: LineWriter, access: bool) -> None:
        super().__init__(LOGGER, logging.INFO)
        self.access = access
        self.writer = writer
        self.bridge = _Bridge(writer)
        self._adopted: list[logging.Logger] = []

    def _log(
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Mapping[str, object] | None = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        if exc_info is None and extra is None and type(args) is tuple and len(args) == 1 and type(args[0]) is dict:
            # The access line: the hot path, every request.
            if level < logging.WARNING and not self.access and "event" not in args[0]:
                return
            line = {"ts": round(time.time(), 3), "level": _LEVELS.get(level, "info"), "msg": msg, **args[0]}
            self.writer.put(orjson.dumps(line, default=str))
            return
        text, fields = _message_and_fields(msg, args)
        if extra:
            fields = {**(fields or {}), **extra}
        if level < logging.WARNING and not self.access and not (fields and "event" in fields):
            return
        level_name = _LEVELS.get(level) or logging.getLevelName(level).lower()
        self.writer.put(_line(time.time(), level_name, text, fields, _traceback(exc_info), None))

    def adopt(self, name: str) -> None:
        """Route a library's logger (uvicorn's errors, with their tracebacks) onto this writer instead of its
        own synchronous stderr handler; called once the server has configured its logging."""
        adopted = logging.getLogger(name)
        adopted.addHandler(self.bridge)
        adopted.propagate = False
        self._adopted.append(adopted)

    def close(self, timeout: float) -> None:
        logging.getLogger("gateway").removeHandler(self.bridge)
        for adopted in self._adopted:
            adopted.removeHandler(self.bridge)
            adopted.propagate = True
        self.writer.close(timeout)


class _Bridge(logging.Handler):
    """Standard loggers under ``gateway`` (the limiter, the health sync...) onto the same writer."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        text, fields = _message_and_fields(record.msg, record.args)
        exc = _traceback(record.exc_info)
        self.writer.put(_line(record.created, record.levelname.lower(), text, fields, exc, record.name))


def configure(
    enabled: bool,
    capacity: int,
    secrets: tuple[str, ...],
    on_drop: Callable[[], None],
    fd: int = 1,
) -> logging.Logger:
    """The gateway's log, writing to ``fd`` (stdout) through a queue of ``capacity`` lines; access lines
    (info) only when ``enabled``. Call ``close`` on it at shutdown."""
    log = JSONLogger(LineWriter(fd, capacity, secrets, on_drop), enabled)
    parent = logging.getLogger("gateway")
    for handler in [h for h in parent.handlers if isinstance(h, _Bridge)]:  # an earlier app's, in tests
        parent.removeHandler(handler)
    parent.addHandler(log.bridge)
    if parent.level == logging.NOTSET or parent.level > logging.INFO:
        parent.setLevel(logging.INFO)  # the lower layers' info-level events (limiter_recovered) reach the writer
    return log


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """One lifecycle event: a JSON line whose ``event`` is ``name`` (see the module docstring for the names)."""
    log.log(level, name.replace("_", " "), {"event": name, **fields})


def adopt(log: logging.Logger, name: str) -> None:
    """``JSONLogger.adopt`` for a logger from ``configure``."""
    if isinstance(log, JSONLogger):
        log.adopt(name)


def close(log: logging.Logger, timeout: float = 2.0) -> None:
    """Flush and stop the writer behind a logger from ``configure`` (waits at most ``timeout`` seconds)."""
    if isinstance(log, JSONLogger):
        log.close(timeout)
