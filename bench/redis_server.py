"""The benchmark's own redis-server, and counting what the gateway sends it.

Round trips are counted as the replies Redis wrote (`total_writes_processed` in INFO stats): one
per request a client sends and waits for. `INFO commandstats` cannot count them, because it also
counts every command a Lua script runs with redis.call (an EVALSHA whose script calls HMGET, HSET
and PEXPIRE adds 1 to evalsha and 1 to each of those). Both are read, for the breakdown.

The bench talks to Redis over a plain socket, one fresh connection per `INFO stats commandstats`
(no handshake, no client library), so what it adds itself is known exactly and taken out again.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import log_tail, pinned, spawn, stop

REDIS_SERVER = "/usr/bin/redis-server"
_CMDSTAT = re.compile(r"^cmdstat_(?P<name>[^:]+):calls=(?P<calls>\d+).*?rejected_calls=(?P<rejected>\d+)", re.M)
_STAT = re.compile(r"^(?P<name>total_\w+):(?P<value>\d+)", re.MULTILINE)
_VERSION = re.compile(r"^redis_version:(\S+)", re.MULTILINE)


def available() -> str | None:
    """The redis-server binary's path, or None when it is not installed."""
    return REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")


def command(binary: str, port: int) -> list[str]:
    """A throwaway server: loopback only, no RDB snapshots, no AOF."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def _resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        data = w.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def call(port: int, *words: str, timeout: float = 2.0) -> str:
    """Send one command on a fresh connection; the reply as text (simple, error or bulk string)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_resp(*words))
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n")
        if head[:1] in (b"+", b"-", b":"):
            return head.decode()
        if head[:1] != b"$":
            raise ConnectionError(f"unexpected redis reply {head[:40]!r}")
        size = int(head[1:])
        if size < 0:
            return ""  # nil
        while len(rest) < size + 2:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection mid-reply")
            rest += chunk
        return rest[:size].decode()


def snapshot(port: int) -> tuple[dict[str, int], dict[str, int]]:
    """(calls + rejected_calls per command from INFO commandstats, the total_* counters of INFO stats).

    One INFO call. A command Redis does not know at all (e.g. CLIENT SETINFO before Redis 7.2) is in
    neither: it shows only as an error reply (total_error_replies).

    Several sections in one INFO need Redis 7.
    """
    text = call(port, "INFO", "stats", "commandstats")
    calls = {m["name"]: int(m["calls"]) + int(m["rejected"]) for m in _CMDSTAT.finditer(text)}
    return calls, {m["name"]: int(m["value"]) for m in _STAT.finditer(text)}


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    version: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop(self.proc)


def start(binary: str, cpu: int, port: int, workdir: Path, timeout: float = 10.0) -> RedisServer:
    """Start redis-server pinned to `cpu` (working directory `workdir`); return once it answers PING."""
    log = workdir / "redis.log"
    proc = spawn(pinned(cpu, command(binary, port)), log, cwd=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            if call(port, "PING", timeout=0.5) == "+PONG":
                info = call(port, "INFO", "server")
                found = _VERSION.search(info)
                return RedisServer(proc, port, found.group(1) if found else "unknown")
        time.sleep(0.01)
    stop(proc)
    raise SystemExit(f"redis-server did not start: {log_tail(log)}")


@dataclass(frozen=True)
class Traffic:
    """What clients other than the bench did between two snapshots."""

    seconds: float  # how long the window was
    replies: int  # replies Redis wrote: the round trips
    reads: int  # read events on client sockets: requests, plus one per connection closed
    connections: int  # connections accepted
    errors: int  # error replies (refused or unknown commands, errors inside scripts)
    commands: dict[str, int]  # INFO commandstats calls, commands run inside scripts included


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic()
    calls: dict[str, int]
    stats: dict[str, int]

    @classmethod
    def take(cls, port: int) -> Snapshot:
        calls, stats = snapshot(port)
        return cls(time.monotonic(), calls, stats)

    def since(self, earlier: Snapshot) -> Traffic:
        """The traffic between `earlier` and this snapshot, without the bench's own.

        Each snapshot is one INFO on its own connection. A snapshot includes its own connection's
        accept and request read, but not its INFO's call (counted after it runs) or reply (written
        after that). So the window holds, of the bench's own: the first INFO's call and reply, the
        first connection's close (a read) and the second connection's accept and request read.
        """
        delta = {name: n - earlier.calls.get(name, 0) for name, n in self.calls.items()}
        delta["info"] = delta.get("info", 0) - 1

        def stat(name: str, own: int) -> int:
            return self.stats.get(name, 0) - earlier.stats.get(name, 0) - own

        return Traffic(
            seconds=self.at - earlier.at,
            replies=stat("total_writes_processed", 1),
            reads=stat("total_reads_processed", 2),
            connections=stat("total_connections_received", 1),
            errors=stat("total_error_replies", 0),
            commands={name: n for name, n in sorted(delta.items()) if n},
        )


@dataclass
class CommandCounter:
    """The gateway's traffic to Redis during each run (`begin()` to `end()`), and between runs.

    The windows between one `end()` and the next `begin()` are kept in `idle`: then nothing sends the
    gateway requests, so what it sends Redis is its background (heartbeats and the like).
    """

    port: int
    idle: list[Traffic] = field(default_factory=list)
    _last: Snapshot | None = None

    def begin(self) -> None:
        now = Snapshot.take(self.port)
        if self._last is not None:
            self.idle.append(now.since(self._last))
        self._last = now

    def end(self) -> Traffic:
        now = Snapshot.take(self.port)
        if self._last is None:
            raise RuntimeError("end() without begin()")
        traffic, self._last = now.since(self._last), now
        return traffic


@dataclass(frozen=True)
class RedisRun:
    """What a gateway sent to the bench's Redis during one wrk run against it."""

    target: str
    kind: str
    connections: int
    requests: int  # completed by wrk
    served: int | None  # answered by the gateway (its /metrics), in flight at wrk's end included
    traffic: Traffic
    mode_before: str  # the limiter's mode as the run started (waited for up to 10 s to be "redis")
    mode: str  # the limiter's mode right after the run ("redis" unless Redis failed)
    degraded: int  # times the limiter fell back to local buckets during the run (gateway log)
    redis_cpu_ms: float  # redis-server CPU time during the run
