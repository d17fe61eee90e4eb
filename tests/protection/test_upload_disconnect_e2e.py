"""A client that leaves in the middle of its upload is a 499 in the access log and the metrics, not a
traceback (issue 8, finding 14).

Before: starlette's ``ClientDisconnect`` escaped the endpoint: a 2.3 KB ERROR traceback per request on
stderr, and no access-log line or request count for it.
"""

from __future__ import annotations

import re
import socket
import time

import httpx
import orjson
import pytest
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess

pytestmark = pytest.mark.usefixtures("fresh_fakes")
DECLARED = 2000


def leave_mid_upload(gw: GatewayProcess, path: str, key: str, request_id: str) -> None:
    """Declare DECLARED bytes of body, send half of them, close."""
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\nx-request-id: {request_id}\r\n"
            f"content-type: application/json\r\ncontent-length: {DECLARED}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "gpt-4o", "messages": [' + b" " * (DECLARED // 2))
        time.sleep(0.2)  # the request is being read when the client goes


def metric(gw: GatewayProcess, sample: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    found = re.search(re.escape(sample) + r" (\S+)", text)
    return float(found.group(1)) if found else 0.0


def access_line(gw: GatewayProcess, request_id: str, timeout: float = 5) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in gw.logs().splitlines():
            if f'"request_id":"{request_id}"' in line:
                record = orjson.loads(line)
                assert isinstance(record, dict)
                return record
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}:\n{gw.logs()[-3000:]}")


def test_a_client_leaving_mid_upload_is_a_499_line_and_counted_not_a_traceback(gateway: GatewayProcess) -> None:
    requests = 'gateway_requests_total{endpoint="/v1/chat/completions",model="none",status="499"}'
    gone = 'gateway_client_disconnects_total{endpoint="/v1/chat/completions"}'
    before = metric(gateway, requests), metric(gateway, gone)
    offset = len(gateway.logs())
    ids = [f"upload-gone-{n}-{time.monotonic_ns()}" for n in range(3)]
    for request_id in ids:
        leave_mid_upload(gateway, "/v1/chat/completions", TEST_KEY, request_id)
    for request_id in ids:
        record = access_line(gateway, request_id)
        assert record["status"] == 499 and record["error"] == "client_disconnected"
        assert record["key"] == "tester"
    assert metric(gateway, requests) == before[0] + 3
    assert metric(gateway, gone) == before[1] + 3
    logs = gateway.logs()[offset:]
    assert "Traceback" not in logs and "ClientDisconnect" not in logs


def test_leaving_mid_upload_to_the_admin_api_leaves_no_traceback(gateway: GatewayProcess) -> None:
    offset = len(gateway.logs())
    leave_mid_upload(gateway, "/admin/explain", ADMIN_KEY, f"admin-gone-{time.monotonic_ns()}")
    time.sleep(0.3)
    assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
    logs = gateway.logs()[offset:]
    assert "Traceback" not in logs and "ClientDisconnect" not in logs
