"""What a client may send is bounded at the server, so a hostile one costs only its own connection (issue 8,
finding 5).

Before: uvicorn with httptools had no header size limit, no header-read timeout and no timeout for a
connection that sends nothing: a 50 MB header froze the whole gateway for seconds, a 100 MB URL took 12 s
and 160 MB, and ~20,000 idle connections exhausted the file descriptors. Every test drives the real
gateway process with raw sockets, with small bounds so that it runs in seconds.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from harness import TEST_KEY, GatewayProcess, config_text, free_port, start_gateway

from gateway.fake.testing import FakeUpstream

pytestmark = pytest.mark.usefixtures("fresh_fakes")

MAX_HEADER = 16 * 1024
TIMEOUT = 1.0  # header, body and keep-alive timeouts of the gateways below
SLACK = 1.5  # seconds of scheduling noise allowed on a loaded machine
BOUNDS = f"""  max_header_bytes: {MAX_HEADER}
  header_timeout_seconds: {TIMEOUT}
  body_timeout_seconds: {TIMEOUT}
  keepalive_timeout_seconds: {TIMEOUT}
"""


@pytest.fixture(scope="module")
def bounded(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream, fake2: FakeUpstream
) -> Iterator[GatewayProcess]:
    port = free_port()
    text = config_text(port, fake.url, fake2.url, extra_server=BOUNDS + "  max_connections: 1000")
    gw = start_gateway(tmp_path_factory.mktemp("bounded"), text, port)
    yield gw
    gw.stop()


def connect(gw: GatewayProcess, timeout: float = 10) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data, time.monotonic() - start


def read_response(stream: BinaryIO) -> bytes:
    """One whole response from a kept-alive connection's ``sock.makefile("rb")``."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        assert line, f"closed after {head!r}"
        head += line
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length, head
    return head + stream.read(int(length.group(1)))


def status_of(answer: bytes) -> int:
    found = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert found, f"not an HTTP answer: {answer[:200]!r}"
    return int(found.group(1))


def healthz_seconds(gw: GatewayProcess) -> float:
    start = time.monotonic()
    assert httpx.get(f"{gw.url}/healthz", timeout=5).status_code == 200
    return time.monotonic() - start


def refused(gw: GatewayProcess, reason: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    found = re.search(rf'gateway_client_connections_refused_total{{reason="{reason}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def rss_kb(gw: GatewayProcess) -> int:
    status = Path(f"/proc/{gw.proc.pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


class Flood(threading.Thread):
    """Sends ``prefix`` then ``size`` filler bytes as fast as the server takes them; stops when it closes."""

    def __init__(self, sock: socket.socket, prefix: bytes, size: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.prefix, self.size = sock, prefix, size
        self.sent = 0

    def run(self) -> None:
        piece = b"a" * 65536
        with contextlib.suppress(OSError):
            self.sock.sendall(self.prefix)
            while self.sent < self.size:
                self.sent += self.sock.send(piece)


@pytest.mark.parametrize(
    ("what", "prefix", "size"),
    [
        ("a 1 MB header", b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ", 1 << 20),
        ("a 100 MB URL", b"GET /", 100 << 20),
    ],
)
def test_an_oversized_head_gets_431_at_once_and_costs_only_its_connection(
    bounded: GatewayProcess, what: str, prefix: bytes, size: int
) -> None:
    before = refused(bounded, "header_too_large")
    rss_before = rss_kb(bounded)
    sock = connect(bounded)
    flood = Flood(sock, prefix, size)
    flood.start()
    answer, seconds = read_until_closed(sock, 10)
    assert status_of(answer) == 431, what
    assert b"request_header_too_large" in answer
    assert seconds < SLACK
    assert healthz_seconds(bounded) < 0.5  # everyone else is served as usual
    flood.join(10)
    assert flood.sent < 16 * MAX_HEADER + (8 << 20), "the server read far past the cap before refusing"
    assert rss_kb(bounded) - rss_before < 30_000, "the head was buffered"
    assert refused(bounded, "header_too_large") == before + 1


def test_a_head_just_under_the_cap_is_served(bounded: GatewayProcess) -> None:
    padding = "p" * (MAX_HEADER - 1024)
    response = httpx.get(f"{bounded.url}/healthz", headers={"x-padding": padding}, timeout=5)
    assert response.status_code == 200


def test_a_slowloris_head_is_closed_after_the_header_timeout(bounded: GatewayProcess) -> None:
    before = refused(bounded, "header_timeout")
    sock = connect(bounded)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
    stop = threading.Event()

    def drip() -> None:  # one header byte every 100 ms, for longer than the timeout
        with contextlib.suppress(OSError):
            while not stop.wait(0.1):
                sock.send(b"a")

    dripper = threading.Thread(target=drip, daemon=True)
    start = time.monotonic()
    dripper.start()
    answer, _ = read_until_closed(sock, TIMEOUT + 5)
    closed_after = time.monotonic() - start
    stop.set()
    dripper.join(5)
    assert TIMEOUT - 0.2 < closed_after < TIMEOUT + SLACK, "closed at the header timeout, not before, not never"
    assert status_of(answer) == 408
    assert refused(bounded, "header_timeout") == before + 1


def test_a_slow_body_upload_is_closed_after_the_body_timeout(bounded: GatewayProcess) -> None:
    before = refused(bounded, "body_timeout")
    sock = connect(bounded)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
        f"authorization: Bearer {TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"model":')
    stop = threading.Event()

    def drip() -> None:
        with contextlib.suppress(OSError):
            while not stop.wait(0.1):
                sock.send(b" ")

    dripper = threading.Thread(target=drip, daemon=True)
    start = time.monotonic()
    dripper.start()
    answer, _ = read_until_closed(sock, TIMEOUT + 5)
    closed_after = time.monotonic() - start
    stop.set()
    dripper.join(5)
    assert TIMEOUT - 0.2 < closed_after < TIMEOUT + SLACK
    assert status_of(answer) == 408
    assert refused(bounded, "body_timeout") == before + 1


def test_idle_connections_are_closed_after_the_keepalive_timeout(bounded: GatewayProcess) -> None:
    before = refused(bounded, "idle")
    socks = [connect(bounded) for _ in range(300)]
    start = time.monotonic()
    assert healthz_seconds(bounded) < 0.5
    try:
        for sock in socks:
            answer, _ = read_until_closed(sock, TIMEOUT + 5)
            assert answer == b""  # closed without a word: it never asked for anything
        assert time.monotonic() - start < TIMEOUT + SLACK
    finally:
        for sock in socks:
            sock.close()
    assert refused(bounded, "idle") == before + 300


def test_a_keepalive_connection_serves_several_requests_then_is_closed_when_idle(bounded: GatewayProcess) -> None:
    sock = connect(bounded)
    stream = sock.makefile("rb")
    for _ in range(3):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert status_of(read_response(stream)) == 200
    _, seconds = read_until_closed(sock, TIMEOUT + 5)
    assert seconds < TIMEOUT + SLACK
    sock.close()


def test_pipelined_requests_are_all_answered_in_order(bounded: GatewayProcess) -> None:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    post = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
        f"authorization: Bearer {TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    get = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    sock = connect(bounded)
    stream = sock.makefile("rb")
    sock.sendall(get + post + get * 1000)  # one write, well over max_header_bytes in all, each head small
    assert status_of(read_response(stream)) == 200
    assert b'"chat.completion"' in read_response(stream)
    for _ in range(1000):
        assert read_response(stream).endswith(b'{"status":"ok"}')
    sock.close()


def test_connections_over_the_cap_evict_idle_ones_then_are_refused_when_all_are_busy(
    tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    cap = 50
    port = free_port()
    bounds = f"  keepalive_timeout_seconds: 10\n  max_connections: {cap}"
    gw = start_gateway(tmp_path, config_text(port, fake.url, fake2.url, extra_server=bounds), port)
    try:
        # 300 idle connections: each one over the cap closes the oldest idle one, and a normal
        # client is still served at once.
        idle = [connect(gw) for _ in range(300)]
        assert healthz_seconds(gw) < 0.5
        closed = 0
        for sock in idle:
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                closed += sock.recv(1) == b""
            sock.close()
        assert closed >= 300 - cap
        assert refused(gw, "evicted") >= 300 - cap

        # Every slot busy with a request in flight: a connection beyond them is refused with a 503.
        fake.configure(model="*", latency_ms=1500)
        body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
            f"authorization: Bearer {TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        busy = [connect(gw) for _ in range(cap)]
        for sock in busy:
            sock.sendall(head.encode() + body)
        wait_for(lambda: fake.stats()["in_flight"] >= cap, 5)  # every slot has a request under way
        answer, seconds = read_until_closed(connect(gw), 5)
        assert status_of(answer) == 503 and seconds < 1
        assert b"too_many_connections" in answer
        for sock in busy:
            answer, _ = read_until_closed(sock, 10)
            assert status_of(answer) == 200
            sock.close()
        assert healthz_seconds(gw) < 0.5  # slots free again: served
        assert refused(gw, "max_connections") >= 1
    finally:
        fake.reset()
        gw.stop()


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
