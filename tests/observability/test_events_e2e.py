"""Lifecycle events, from the real gateway process: JSON lines with a stable ``event`` field for start, policy
reloads (applied and refused), circuits opening and closing, the limiter degrading and recovering, and the
shutdown, written even with the access log off (the operator's record, which log queries rely on)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from harness import TEST_KEY, GatewayProcess, free_port, start_gateway
from policy.support import TIMEOUTS, account, chat, key, write_policy
from redis_procs import RedisServer

from gateway.fake.testing import FakeUpstream

POLICY = """
routes:
  ev-route:
    - name: main
      candidates: [a/ev-main]
"""
OTHER_POLICY = POLICY.replace("ev-main]", "ev-main, a/ev-broken]")


def events(gateway: GatewayProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if "event" in line]


def wait_event(gateway: GatewayProcess, name: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(gateway) if e["event"] == name and fields.items() <= e.items()]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no {name} event {fields}; events: {[e['event'] for e in events(gateway)]}"
        time.sleep(0.05)


def until(what: str, probe: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_lifecycle_events_are_json_lines_with_a_stable_event_field(
    tmp_path: Path, fresh_fakes: tuple[FakeUpstream, FakeUpstream], redis_server: RedisServer
) -> None:
    fake, _ = fresh_fakes
    policies = tmp_path / "policies"
    write_policy(policies, POLICY)
    port = free_port()
    doc: dict[str, Any] = {
        "server": {"port": port, "timeouts": TIMEOUTS, "access_log": False, "drain_delay_seconds": 0.2},
        "state": {"redis_url": redis_server.url},
        "circuit": {"failure_threshold": 1, "min_requests": 1_000_000, "open_seconds": 0.5, "half_open_probes": 1},
        "providers": {"a": account(fake.url, {"ev-main": {}, "ev-broken": {}})},
        "keys": [key("tester", TEST_KEY, ["*"])],
        "policies": {"dir": str(policies)},
        "limits": {"redis_deadline_ms": 50},
    }
    gateway = start_gateway(tmp_path / "gw", yaml.safe_dump(doc), port)
    try:
        start = wait_event(gateway, "start")
        assert start["pid"] == gateway.proc.pid and start["port"] == port and start["limiter"] == "redis"
        assert start["level"] == "info" and start["tracing"] is False and start["policy"]
        assert chat(gateway, "ev-route").status_code == 200

        write_policy(policies, OTHER_POLICY)
        reloaded = wait_event(gateway, "policy_reloaded")
        assert reloaded["from"] == start["policy"] and reloaded["to"] != start["policy"]
        assert reloaded["reason"] == "file change" and reloaded["msg"] == "policy reloaded"
        write_policy(policies, "routes: {ev-route: [{name: main, candidates: [a/no-such-deployment]}]}\n")
        refused = wait_event(gateway, "policy_rejected")
        assert refused["level"] == "error" and refused["serving"] == reloaded["to"]
        assert any("no-such-deployment" in error for error in refused["errors"])

        fake.configure(model="ev-broken", failure_kind="500", failure_rate=1.0)
        assert chat(gateway, "a/ev-broken").status_code == 502
        opened = wait_event(gateway, "circuit_opened", deployment="a/ev-broken")
        assert opened["level"] == "warning"
        fake.configure(model="ev-broken", failure_rate=0.0)

        def closed() -> bool:  # once half-open (open_seconds), a probe goes through and its success closes it
            chat(gateway, "a/ev-broken")
            return any(e["event"] == "circuit_closed" and e.get("deployment") == "a/ev-broken" for e in events(gateway))

        until("a probe to close the circuit", closed)
        circuits = [e["event"] for e in events(gateway) if e.get("deployment") == "a/ev-broken"]
        assert circuits[0] == "circuit_opened" and "circuit_half_open" in circuits, circuits

        redis_server.kill()
        until("a request served on local buckets", lambda: chat(gateway, "ev-route").status_code == 200)
        degraded = wait_event(gateway, "limiter_degraded")
        assert degraded["level"] == "warning" and degraded["error"]
        redis_server.start()
        wait_event(gateway, "limiter_recovered")
    finally:
        assert gateway.stop(signal.SIGTERM) == 0
    names = [e["event"] for e in events(gateway)]
    assert names[-2:] == ["shutdown", "stopped"], names
    shutdown = events(gateway)[-2]
    assert shutdown["drain_delay_seconds"] == 0.2
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("msg") == "request"]  # access lines are off; events are not
    assert all({"ts", "level", "msg", "event"} <= e.keys() for e in events(gateway))
