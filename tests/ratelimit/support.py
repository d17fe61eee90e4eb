"""Helpers for the rate-limit end-to-end tests: configs, gateway fleets, bucket reads and reporting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess, free_port, start_gateway

from gateway.auth import digest

QUOTA_KEY = "quota-key"  # a key with its own rpm/tpm quotas and per-user quotas
ACCOUNT = "acct"  # the provider account every test routes to first
BACKUP = "backup"  # a second account, for fallback


def account(fake_url: str, models: dict[str, Any], limits: dict[str, int] | None = None) -> dict[str, Any]:
    """One OpenAI-kind provider account on a fake upstream."""
    spec: dict[str, Any] = {
        "kind": "openai",
        "base_url": f"{fake_url}/v1",
        "api_key_env": "FAKE_UPSTREAM_KEY",
        "models": models,
    }
    if limits:
        spec["limits"] = limits
    return spec


def key(name: str, secret: str, limits: dict[str, int] | None = None, user_limits: dict[str, int] | None = None) -> Any:
    spec: dict[str, Any] = {"name": name, "key_sha256": digest(secret), "models": ["*"]}
    if limits:
        spec["limits"] = limits
    if user_limits:
        spec["user_limits"] = user_limits
    return spec


def config(
    port: int,
    *,
    redis_url: str,
    prefix: str,
    providers: dict[str, Any],
    keys: list[Any] | None = None,
    **limits: Any,
) -> str:
    """A gateway config: the given accounts, a quota-free ``tester`` key unless ``keys`` says otherwise,
    and the top-level ``limits`` (queue_timeout_seconds defaults to 0: answer 429 at once)."""
    doc = {
        "server": {
            "port": port,
            "timeouts": {"connect": 1, "first_byte": 5, "total": 30, "stream_idle": 5},
            "shutdown_grace_seconds": 3,
            "drain_delay_seconds": 0,
        },
        "state": {"redis_url": redis_url},
        "limits": {"key_prefix": prefix, "queue_timeout_seconds": 0, **limits},
        "providers": providers,
        "keys": keys if keys is not None else [key("tester", TEST_KEY)],
        "admin": {"key_sha256": digest(ADMIN_KEY)},
    }
    return yaml.safe_dump(doc, sort_keys=False)


class Fleet:
    """Gateway processes started by one test; all stopped at teardown, whatever happened."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[GatewayProcess] = []

    def start(self, make_config: Callable[[int], str], count: int = 1) -> list[GatewayProcess]:
        """``count`` gateways, started in parallel; ``make_config(port)`` gives each one's config.
        Returns once each one's limiter runs on Redis."""
        base = len(self.processes)

        def one(i: int) -> GatewayProcess:
            port = free_port()
            return start_gateway(self.directory / f"gw{base + i}", make_config(port), port)

        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(one, i) for i in range(count)]
        # Every start has ended here; keep the ones that came up (teardown stops them) before raising.
        started = [f.result() for f in futures if f.exception() is None]
        self.processes += started
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        on_redis(*started)  # every test here configures Redis; start from the shared buckets
        return started

    def stop_all(self) -> None:
        for process in self.processes:
            try:
                process.stop(timeout=10)
            except Exception:  # already killed by stop(); keep stopping the others
                pass
        self.processes.clear()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> float:
    """Seconds until predicate() held; raises AssertionError after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def readiness(gateway: GatewayProcess) -> str:
    return str(httpx.get(f"{gateway.url}/readyz", timeout=2).json()["checks"]["limits"])


def on_redis(*gateways: GatewayProcess, timeout: float = 5) -> None:
    """Wait until every gateway's limiter runs on Redis. A replica that cannot reach Redis within
    ``redis_deadline_ms`` at start-up comes up degraded and switches over once its first probe succeeds."""
    for gateway in gateways:
        wait_for(lambda: readiness(gateway) == "redis", timeout)  # noqa: B023 (called at once)


def degraded_metric(gateway: GatewayProcess) -> float:
    for line in httpx.get(f"{gateway.url}/metrics", timeout=2).text.splitlines():
        if line.startswith("gateway_limiter_degraded "):
            return float(line.split()[1])
    raise AssertionError("gateway_limiter_degraded is not exported")


@dataclass(frozen=True)
class Bucket:
    """One limiter bucket as stored in Redis: the string ``"<level> <Redis TIME of that level>"``."""

    level: float
    at: float


def bucket_key(prefix: str, name: str) -> str:
    return "{" + prefix + "}:b2:" + name


def read_bucket(client: redis.Redis, prefix: str, name: str) -> Bucket | None:
    stored = client.get(bucket_key(prefix, name))
    if stored is None:
        return None  # a missing bucket is full
    level, at = stored.split()
    return Bucket(float(level), float(at))


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def settled_bucket(client: redis.Redis, prefix: str, name: str, quiet: float = 0.4, timeout: float = 5) -> Bucket:
    """The bucket once nothing has written it for ``quiet`` seconds (settling runs after the response)."""
    last = read_bucket(client, prefix, name)
    still_since = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read_bucket(client, prefix, name)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            assert last is not None, f"bucket {name} is missing (full): nothing was charged"
            return last
    raise AssertionError(f"bucket {name} kept changing for {timeout} s")


def retry_after_seconds(headers: httpx.Headers) -> tuple[int, float]:
    """(Retry-After, retry-after-ms / 1000); both must be present and consistent."""
    whole = int(headers["retry-after"])
    precise = int(headers["retry-after-ms"]) / 1000
    # Retry-After is the same wait rounded up to whole seconds (at least 1); rounding may differ by 1 ms.
    lowest = max(1.0, precise)
    assert lowest - 0.001 <= whole < lowest + 1.001, f"Retry-After {whole} disagrees with retry-after-ms {precise}"
    return whole, precise


def report(capsys: Any, line: str) -> None:
    """Print a figure line past pytest's capture, so it shows in every run (not only on failure)."""
    with capsys.disabled():
        print(f"\n{line}", flush=True)
    print(line)


def limiter_events(gateways: list[GatewayProcess], since: float) -> list[str]:
    """Each gateway's switches to and from Redis, in seconds from ``since`` (Unix time), for a failure's message:
    when a replica degraded, and why, is most of what explains a provider's 429 in a run."""
    events = []
    for i, gateway in enumerate(gateways):
        for line in gateway.logs().splitlines():
            if '"limiter_' not in line:
                continue
            entry = json.loads(line)
            error = f" {entry['error']}" if "error" in entry else ""
            events.append((entry["ts"], f"gw{i} {entry['ts'] - since:+.2f}s {entry['event']}{error}"))
    return [text for _, text in sorted(events)]
