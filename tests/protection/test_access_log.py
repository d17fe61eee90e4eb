"""Logging never blocks the event loop (issue 8, finding 12).

Before: the access log was written synchronously to stdout, so when nothing drained the pipe the gateway
froze after ~192 requests (``/healthz`` too). Now every line goes through a bounded queue drained by a
writer thread; when the queue is full the line is dropped and counted in
``gateway_access_log_dropped_total``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from harness import TEST_KEY, UPSTREAM_KEY, config_text, free_port

from gateway import accesslog
from gateway.fake.testing import FakeUpstream

HEADERS = {"authorization": f"Bearer {TEST_KEY}"}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Pipe:
    """An os.pipe whose read end nobody drains until ``drain()`` is called."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.data = b""

    def drain(self, until: int, timeout: float = 10) -> list[bytes]:
        """Read until ``until`` lines have arrived (or the timeout), return all lines read so far."""
        os.set_blocking(self.read_end, False)
        deadline = time.monotonic() + timeout
        while self.data.count(b"\n") < until and time.monotonic() < deadline:
            try:
                self.data += os.read(self.read_end, 1 << 20)
            except BlockingIOError:
                time.sleep(0.01)
        return self.data.splitlines()

    def close(self) -> None:
        for fd in (self.read_end, self.write_end):
            os.close(fd)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    p.close()


def test_a_full_pipe_drops_and_counts_lines_and_never_blocks(pipe: Pipe) -> None:
    dropped: list[int] = []
    log = accesslog.configure(True, 100, (), lambda: dropped.append(1), fd=pipe.write_end)
    try:
        start = time.monotonic()
        for n in range(20_000):
            log.info("request", {"request_id": f"r{n}", "status": 200, "pad": "x" * 200})
        assert time.monotonic() - start < 2  # ~1 µs a line: nothing waited for the pipe
        assert len(dropped) > 10_000
        lines = pipe.drain(until=20_000 - len(dropped))
        assert len(lines) + len(dropped) == 20_000
        first, last = orjson.loads(lines[0]), orjson.loads(lines[-1])
        assert first["request_id"] == "r0" and first["msg"] == "request" and first["level"] == "info"
        assert int(last["request_id"][1:]) < 20_000
    finally:
        accesslog.close(log)


def test_lines_are_json_with_configured_secrets_redacted_at_every_level(pipe: Pipe) -> None:
    azure_like = "0123456789abcdef0123456789abcdef"  # no shape the regex knows: only the value can catch it
    quoted = 'tok"en\\with-quotes'  # appears JSON-escaped in a line
    log = accesslog.configure(False, 100, (azure_like, quoted), lambda: None, fd=pipe.write_end)
    try:
        log.info("request", {"request_id": azure_like})  # access lines off: not written
        log.warning("policy reloaded", {"reason": f"key {azure_like}"})
        log.error("upstream said %s", f"bad key {azure_like} {quoted}")
        try:
            raise ValueError(f"echoed {azure_like}")
        except ValueError:
            log.exception("unexpected")
        logging.getLogger("gateway.limits.resilient").warning("redis at redis://:%s@host failed", azure_like)
        lines = [orjson.loads(line) for line in pipe.drain(until=4)]
    finally:
        accesslog.close(log)
    msgs = [line["msg"] for line in lines[:3]]
    assert msgs == ["policy reloaded", "upstream said bad key [redacted] [redacted]", "unexpected"]
    assert lines[0] == {"ts": lines[0]["ts"], "level": "warning", "msg": "policy reloaded", "reason": "key [redacted]"}
    assert lines[2]["level"] == "error" and "ValueError: echoed [redacted]" in lines[2]["exc"]
    assert lines[3]["level"] == "warning" and lines[3]["logger"] == "gateway.limits.resilient"
    assert azure_like not in pipe.data.decode() and b"tok" not in pipe.data


def test_close_flushes_what_is_queued(pipe: Pipe) -> None:
    log = accesslog.configure(True, 10_000, (), lambda: None, fd=pipe.write_end)
    for n in range(500):
        log.info("request", {"n": n})
    reader = threading.Thread(target=pipe.drain, args=(500,))
    reader.start()
    accesslog.close(log)
    reader.join(10)
    assert pipe.data.count(b"\n") == 500


def test_the_servers_own_errors_become_redacted_json_lines(pipe: Pipe) -> None:
    secret = "3f9c2a7d1b8e4f6a9c0d2e1f3a5b7c9d"
    log = accesslog.configure(True, 100, (secret,), lambda: None, fd=pipe.write_end)
    server = logging.getLogger("uvicorn.error")
    accesslog.adopt(log, "uvicorn.error")
    assert server.propagate is False  # not also to uvicorn's synchronous stderr handler
    try:
        raise RuntimeError(f"upstream said {secret}")
    except RuntimeError:
        server.exception("Exception in ASGI application")
    reader = threading.Thread(target=pipe.drain, args=(1,))
    reader.start()
    accesslog.close(log)
    reader.join(10)
    [line] = [orjson.loads(raw) for raw in pipe.data.splitlines()]
    assert line["logger"] == "uvicorn.error" and line["level"] == "error" and "RuntimeError" in line["exc"]
    assert secret not in pipe.data.decode() and "[redacted]" in line["exc"]
    assert server.propagate is True and log.bridge not in server.handlers  # type: ignore[attr-defined]


def json_lines(data: bytes) -> list[bytes]:
    return [line for line in data.splitlines() if line.startswith(b"{")]  # not the start-up banner


def test_a_gateway_whose_stdout_nobody_reads_keeps_serving(
    tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(config_text(port, fake.url, fake2.url, extra_server="  access_log_queue: 300"))
    with open(tmp_path / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY},
        )
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=2) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if client.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, (tmp_path / "stderr.log").read_text()
                    time.sleep(0.05)
            total = 2000
            for n in range(total):  # a few answered by the upstream, the rest refused (401) by the gateway
                headers = HEADERS if n % 20 == 0 else {}
                response = client.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
                assert response.status_code == (200 if headers else 401)
            start = time.monotonic()
            assert client.get(f"{url}/healthz").status_code == 200
            assert time.monotonic() - start < 0.5
            metrics = client.get(f"{url}/metrics").text
        found = re.search(r"^gateway_access_log_dropped_total (\S+)$", metrics, re.MULTILINE)
        assert found
        dropped = int(float(found.group(1)))
        assert dropped > 0  # the pipe and the queue hold far fewer than 2,000 lines
        os.set_blocking(proc.stdout.fileno(), False)
        data = b""
        deadline = time.monotonic() + 10
        while len(json_lines(data)) < total - dropped and time.monotonic() < deadline:
            data += proc.stdout.read() or b""
            time.sleep(0.01)
        time.sleep(0.2)
        data += proc.stdout.read() or b""
        lines = [line for raw in json_lines(data) if "event" not in (line := orjson.loads(raw))]  # not start
        assert all(line["msg"] == "request" for line in lines)
        assert len(lines) + dropped == total
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
