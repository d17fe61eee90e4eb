"""Hot reload of the policy while requests run, with valid and invalid files, and refusing to start.

Version A routes ``rl`` to ``a/rl-x`` (rule ``use-x``), version B to ``b/rl-y`` (rule ``use-y``). While three
clients send requests, the file is rewritten and reloaded by each trigger (file change, SIGHUP,
``POST /admin/policies/reload``), alternating A, B and invalid versions.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import TEST_KEY, UPSTREAM_KEY, GatewayProcess, free_port
from policy.support import MESSAGES, Launch, account, admin, config, metric, wait_for, write_policy

from gateway.fake.testing import FakeUpstream
from gateway.routing.policy.files import policy_version

FILE = "policy.yaml"
VALID = {
    "A": "routes:\n  rl:\n    - name: use-x\n      candidates: [a/rl-x]\n",
    "B": "routes:\n  rl:\n    - name: use-y\n      candidates: [b/rl-y]\n",
}
SERVES = {"A": ("a/rl-x", "rl/use-x"), "B": ("b/rl-y", "rl/use-y")}
# Each invalid version, and what its error must say (after "policy.yaml:<line>: ").
INVALID = {
    "syntax": ("routes:\n  rl:\n    - name: use-y\n      candidates: [b/rl-y\n", r"invalid YAML"),
    "unknown deployment": (
        "routes:\n  rl:\n    - name: use-y\n      candidates: [b/rl-z]\n",
        r"routes\.rl\[0\]\.candidates\[0\]: unknown deployment 'b/rl-z'",
    ),
    "cycle": (
        "chains:\n  one: [a/rl-x, chain:two]\n  two: [chain:one]\n"
        "routes:\n  rl:\n    - name: use-x\n      candidates: [chain:one]\n",
        r"chain:one -> chain:two -> chain:one",
    ),
}
REASONS = {"file": "file change", "sighup": "SIGHUP", "api": "admin API"}


def providers(fake: FakeUpstream, fake2: FakeUpstream) -> dict[str, Any]:
    return {"a": account(fake.url, {"rl-x": {}}), "b": account(fake2.url, {"rl-y": {}})}


def version_of(name: str) -> str:
    return policy_version([(FILE, VALID[name].encode())])


def status(gateway: GatewayProcess) -> dict[str, Any]:
    response = admin(gateway, "GET", "/admin/policies")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def loaded(gateway: GatewayProcess, version: str) -> Callable[[], dict[str, Any] | None]:
    """A probe for ``wait_for``: the policy status once ``version`` serves."""

    def probe() -> dict[str, Any] | None:
        now = status(gateway)
        return now if now["version"] == version else None

    return probe


def refused(gateway: GatewayProcess, since: float, reason: str) -> Callable[[], dict[str, Any] | None]:
    """A probe for ``wait_for``: the policy status once a reload for ``reason`` was refused after ``since``."""

    def probe() -> dict[str, Any] | None:
        now = status(gateway)
        rejection = now["last_rejection"]
        return now if rejection is not None and rejection["at"] >= since and rejection["reason"] == reason else None

    return probe


@dataclass
class Result:
    started: float
    ended: float
    status: int
    deployment: str | None
    rule: str | None


class Load:
    """``clients`` loops sending requests to ``rl`` until stopped (or ``limit`` seconds)."""

    def __init__(self, gateway: GatewayProcess, clients: int = 3, limit: float = 15.0) -> None:
        self.gateway, self.limit = gateway, limit
        self.results: list[Result] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(20)

    def run(self) -> None:
        headers = {"authorization": f"Bearer {TEST_KEY}"}
        body = {"model": "rl", "messages": MESSAGES, "max_tokens": 3}
        end = time.monotonic() + self.limit
        with httpx.Client(base_url=self.gateway.base_url, headers=headers, timeout=10) as client:
            while not self.stopping.is_set() and time.monotonic() < end:
                started = time.monotonic()
                try:
                    r = client.post("/chat/completions", json=body)
                    result = Result(
                        started,
                        time.monotonic(),
                        r.status_code,
                        r.headers.get("x-gateway-deployment"),
                        r.headers.get("x-gateway-rule"),
                    )
                except httpx.HTTPError:
                    result = Result(started, time.monotonic(), 0, None, None)
                self.results.append(result)
                self.stopping.wait(0.02)  # modest load: about 100 requests a second in all


def trigger(gateway: GatewayProcess, how: str) -> httpx.Response | None:
    if how == "sighup":
        os.kill(gateway.proc.pid, signal.SIGHUP)
    elif how == "api":
        return admin(gateway, "POST", "/admin/policies/reload")
    return None  # "file": the gateway polls the directory every second


def test_reload_under_load_serves_one_whole_version_at_a_time_and_refuses_invalid_files(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    write_policy(policy_dir, VALID["A"])
    gateway = launch(lambda port: config(port, providers(fake, fake2), policy_dir))
    assert status(gateway)["version"] == version_of("A") != version_of("B")
    steps = [
        ("B", "file"),
        ("syntax", "api"),
        ("A", "sighup"),
        ("unknown deployment", "file"),
        ("B", "api"),
        ("cycle", "sighup"),
        ("A", "file"),
    ]
    serving = "A"
    # (version, from, to): while a version was known to be serving, requests that ran wholly inside
    # this span must have been served by it.
    spans: list[tuple[str, float, float]] = []
    since = time.monotonic()
    with Load(gateway) as load:
        time.sleep(0.3)  # some traffic on A first
        for name, how in steps:
            rejected = metric(gateway, "gateway_policy_reloads_total", result="rejected")
            written_wall = time.time()
            if name in VALID:
                spans.append((serving, since, time.monotonic()))
            write_policy(policy_dir, VALID[name] if name in VALID else INVALID[name][0])
            answer = trigger(gateway, how)
            if name in VALID:
                if answer is not None:
                    assert answer.status_code == 200 and answer.json()["version"] == version_of(name)
                now = wait_for(f"version {name} after a {how} reload", loaded(gateway, version_of(name)), timeout=3)
                since, serving = time.monotonic(), name
                assert now["last_rejection"] is None
                assert metric(gateway, "gateway_policy_reloads_total", result="rejected") == rejected
            else:
                if answer is not None:
                    assert answer.status_code == 422
                now = wait_for(
                    f"the {name} version to be refused after a {how} reload",
                    refused(gateway, written_wall, REASONS[how]),
                    timeout=3,
                )
                if answer is not None:
                    assert answer.json()["last_rejection"] == now["last_rejection"]
                errors = now["last_rejection"]["errors"]
                where = re.escape(str(policy_dir / FILE))
                assert any(re.match(rf"{where}:\d+: .*{INVALID[name][1]}", e) for e in errors), errors
                assert now["version"] == version_of(serving)  # the old version keeps serving
                assert metric(gateway, "gateway_policy_reloads_total", result="rejected") >= rejected + 1
            time.sleep(0.4)  # traffic in this state
        spans.append((serving, since, time.monotonic()))
    results = load.results

    failed = [r for r in results if r.status != 200]
    assert not failed, failed[:5]
    mixed = [r for r in results if (r.deployment, r.rule) not in SERVES.values()]
    assert not mixed, mixed[:5]
    for version, begin, end in spans:
        inside = [r for r in results if begin <= r.started and r.ended <= end]
        assert inside, f"no request ran wholly while {version} was serving"
        assert all((r.deployment, r.rule) == SERVES[version] for r in inside), (version, begin, end)
    assert len(results) > 100
    assert metric(gateway, "gateway_policy_reloads_total", result="rejected") >= 3
    assert metric(gateway, "gateway_policy_reloads_total", result="applied") >= 4
    assert metric(gateway, "gateway_policy_info", version=version_of("A")) == 1
    assert metric(gateway, "gateway_policy_info", version=version_of("B")) == 0


def _gateway(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=30, env=env)


def test_gateway_refuses_to_start_with_an_invalid_policy_and_check_lists_every_error(
    tmp_path: Path, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    write_policy(policy_dir, INVALID["syntax"][0], name="a-syntax.yaml")
    write_policy(policy_dir, INVALID["unknown deployment"][0].replace("rl:", "other:"), name="b-unknown.yaml")
    write_policy(policy_dir, INVALID["cycle"][0].replace("rl:", "third:"), name="c-cycle.yaml")
    port = free_port()
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(config(port, providers(fake, fake2), policy_dir))
    env = {**os.environ, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY}
    expected = [
        rf"{re.escape(str(policy_dir / 'a-syntax.yaml'))}:\d+: {INVALID['syntax'][1]}",
        rf"{re.escape(str(policy_dir / 'b-unknown.yaml'))}:4: routes\.other\[0\]\.candidates\[0\]: unknown deployment",
        rf"{re.escape(str(policy_dir / 'c-cycle.yaml'))}:2: chains\.one: .*{INVALID['cycle'][1]}",
    ]

    served = _gateway("serve", "--config", str(config_file), env=env)
    assert served.returncode != 0
    for pattern in expected:
        assert re.search(pattern, served.stderr), (pattern, served.stderr)
    try:  # it never listened
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
        raise AssertionError("the gateway is listening")
    except httpx.ConnectError:
        pass

    checked = _gateway("check", "--config", str(config_file), env=env)
    assert checked.returncode == 1
    assert "3 errors" in checked.stderr
    for pattern in expected:
        assert re.search(pattern, checked.stderr), (pattern, checked.stderr)

    write_policy(policy_dir, VALID["A"], name="a-syntax.yaml")
    for name in ("b-unknown.yaml", "c-cycle.yaml"):
        (policy_dir / name).unlink()
    fixed = _gateway("check", "--config", str(config_file), env=env)
    assert fixed.returncode == 0 and "1 routes" in fixed.stdout, fixed.stderr
