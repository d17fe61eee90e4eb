"""Helpers for the routing-policy end-to-end tests: configs with a policy directory, requests, polling.

Every test builds its own gateway config with two provider accounts, ``a`` on the session fake ``fake``
and ``b`` on ``fake2``, serving model names no other test uses, and its own policy directory.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess

from gateway.auth import digest

T = TypeVar("T")
Launch = Callable[..., GatewayProcess]  # the ``launch`` fixture: launch(make_config, name="gw", env=None)
REDIS_URL = "redis://127.0.0.1:6379/0"  # the suite's shared Redis (scripts/ensure-redis)
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
# Like harness.NO_CIRCUIT: injected failures must not open circuits unless a test is about circuits.
NO_CIRCUIT: dict[str, Any] = {"failure_threshold": 1_000_000, "min_requests": 1_000_000}
TIMEOUTS = {"connect": 1, "first_byte": 1, "total": 8, "stream_idle": 1}


def account(url: str, models: Mapping[str, Mapping[str, Any]], key_env: str = "FAKE_UPSTREAM_KEY") -> dict[str, Any]:
    """An OpenAI-kind provider account on a fake upstream; ``models`` maps name -> deployment settings."""
    return {"kind": "openai", "base_url": f"{url}/v1", "api_key_env": key_env, "models": dict(models)}


def key(name: str, secret: str, models: list[str], tier: str = "standard") -> dict[str, Any]:
    return {"name": name, "key_sha256": digest(secret), "tier": tier, "models": models}


def config(
    port: int,
    providers: Mapping[str, Any],
    policy_dir: Path,
    *,
    circuit: Mapping[str, Any] | None = None,
    redis_url: str = "",
    prefix: str | None = None,
    keys: list[dict[str, Any]] | None = None,
    timeouts: Mapping[str, float] | None = None,
) -> str:
    """A gateway config (YAML) whose policies live in ``policy_dir``; the ``tester`` key may use every model."""
    doc: dict[str, Any] = {
        "server": {
            "port": port,
            "timeouts": dict(timeouts or TIMEOUTS),
            "shutdown_grace_seconds": 3,
            "drain_delay_seconds": 0,
            "access_log": False,
        },
        "state": {"redis_url": redis_url},
        "circuit": dict(NO_CIRCUIT if circuit is None else circuit),
        "providers": dict(providers),
        "keys": keys if keys is not None else [key("tester", TEST_KEY, ["*"], tier="premium")],
        "admin": {"key_sha256": digest(ADMIN_KEY)},
        "policies": {"dir": str(policy_dir)},
    }
    if prefix is not None:
        doc["limits"] = {"key_prefix": prefix}
    return yaml.safe_dump(doc, sort_keys=False)


def write_policy(directory: Path, text: str, name: str = "policy.yaml") -> bytes:
    """Replace a policy file atomically (a reader never sees half a file); returns the bytes written."""
    directory.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    temporary = directory / f".{name}.tmp"  # dot-files are not policy files
    temporary.write_bytes(data)
    os.replace(temporary, directory / name)
    return data


def chat(
    gateway: GatewayProcess,
    model: str,
    key_: str = TEST_KEY,
    headers: Mapping[str, str] | None = None,
    timeout: float = 15,
    **body: Any,
) -> httpx.Response:
    payload = {"model": model, "messages": MESSAGES, **body}
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key_}", **(headers or {})},
        timeout=timeout,
    )


def admin(gateway: GatewayProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, f"{gateway.url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10, **kwargs
    )


def explain(gateway: GatewayProcess, model: str, **request: Any) -> dict[str, Any]:
    response = admin(
        gateway, "POST", "/admin/explain", json={"request": {"model": model, "messages": MESSAGES, **request}}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def count(stats: Mapping[str, Any], model: str) -> int:
    """Requests a fake received for ``model`` (answered or failed)."""
    return int(stats["requests_by_model"].get(model, 0))


def metric(gateway: GatewayProcess, name: str, **labels: str) -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == wanted:
            return float(m.group(3))
    return 0.0


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
