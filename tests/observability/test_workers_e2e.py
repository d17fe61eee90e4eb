"""Metrics with ``server.workers: 2``: the real gateway process (two uvicorn workers sharing one socket, limits
in Redis) after a scripted workload over many connections, so both workers serve it. Every scrape, whichever
worker answers it, shows the sums of the whole workload; a worker that dies takes its in-flight requests out
of ``gateway_inflight_requests`` while what it counted stays."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import TEST_KEY, GatewayProcess, free_port, start_gateway
from observability.scrape import Samples, scrape, total, value
from policy.support import MESSAGES, NO_CIRCUIT, account, key, write_policy
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from redis_procs import RedisServer

from gateway.fake.testing import FakeUpstream

POLICY = """
routes:
  wk-route:
    - name: main
      candidates: [b/wk-flaky]
      fallback: [a/wk-main]
defaults:
  retry_on: [5xx]
  retries: {same_deployment: 0}
"""
CHAT = "/v1/chat/completions"
AUTH = {"authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture
def two_workers(
    tmp_path: Path, fresh_fakes: tuple[FakeUpstream, FakeUpstream], redis_server: RedisServer
) -> Iterator[tuple[GatewayProcess, Path]]:
    fake, fake2 = fresh_fakes
    write_policy(tmp_path / "policies", POLICY)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    doc: dict[str, Any] = {
        "server": {
            "port": port,
            "workers": 2,
            "access_log": False,
            "shutdown_grace_seconds": 2,
            "timeouts": {"connect": 1, "first_byte": 10, "total": 20, "stream_idle": 5},
        },
        "state": {"redis_url": redis_server.url},
        "circuit": NO_CIRCUIT,
        "providers": {
            "a": account(fake.url, {"wk-main": {"limits": {"rpm": 120}}, "wk-slow": {}}),
            "b": account(fake2.url, {"wk-flaky": {}}),
        },
        "keys": [key("tester", TEST_KEY, ["*"])],
        "policies": {"dir": str(tmp_path / "policies")},
        "observability": {"metrics": {"headroom_interval_seconds": 0.2}},
    }
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    gateway = start_gateway(tmp_path / "gw", yaml.safe_dump(doc), port, env=env)
    try:
        deadline = time.monotonic() + 15
        while len(worker_pids(gateway)) < 2:  # both workers started (the parent answers /healthz through them)
            assert time.monotonic() < deadline, gateway.logs()
            time.sleep(0.05)
        yield gateway, metrics_dir
    finally:
        gateway.stop()


def worker_pids(gateway: GatewayProcess) -> list[int]:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [line["pid"] for line in lines if line.get("event") == "start"]


def one_request(gateway: GatewayProcess, kind: str) -> tuple[int, int, int]:
    """One request on its own connection: (status, prompt tokens, completion tokens)."""
    with httpx.Client(base_url=gateway.url, timeout=15) as http:  # a new connection: either worker may take it
        if kind == "refused":
            return http.post(CHAT, json={"model": "a/wk-main", "messages": MESSAGES}).status_code, 0, 0
        body = {"model": "wk-route" if kind == "fallback" else "a/wk-main", "messages": MESSAGES, "max_tokens": 4}
        if kind != "stream":
            answer = http.post(CHAT, json=body, headers=AUTH)
            usage = answer.json().get("usage") or {}
            return answer.status_code, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        with http.stream("POST", CHAT, json=body, headers=AUTH) as stream:
            events = [line.removeprefix("data: ") for line in stream.iter_lines() if line.startswith("data: {")]
            usage = json.loads(events[-1])["usage"]
            return stream.status_code, usage["prompt_tokens"], usage["completion_tokens"]


def test_two_workers_report_the_sums_of_the_whole_workload(
    two_workers: tuple[GatewayProcess, Path], fresh_fakes: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    gateway, metrics_dir = two_workers
    fresh_fakes[1].configure(model="wk-flaky", failure_kind="500", failure_rate=1.0)
    kinds = ["json"] * 30 + ["fallback"] * 10 + ["stream"] * 10 + ["refused"] * 6
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda kind: one_request(gateway, kind), kinds))
    assert [status for status, _, _ in results] == [401 if k == "refused" else 200 for k in kinds]
    pids = worker_pids(gateway)
    served = [
        worker(metrics_dir, pid, "counter", tmp_path / "one").get_sample_value(
            "gateway_requests_total", {"endpoint": CHAT, "model": "a/wk-main", "status": "200"}
        )
        or 0
        for pid in pids
    ]
    assert len(served) == 2 and min(served) > 0 and sum(served) == 40, served  # both workers answered some

    scrapes = [scrape(gateway.url) for _ in range(6)]  # answered by either worker, each time the same sums
    samples = scrapes[-1]
    for earlier in scrapes[:-1]:
        assert counters(earlier) == counters(samples)
    answered = {"endpoint": CHAT, "model": "a/wk-main"}
    assert value(samples, "gateway_requests_total", **answered, status="200") == 40
    assert value(samples, "gateway_requests_total", endpoint=CHAT, model="wk-route", status="200") == 10
    assert total(samples, "gateway_requests_total", status="401") == 6
    assert value(samples, "gateway_request_duration_seconds_count", endpoint=CHAT) == 56
    assert value(samples, "gateway_overhead_seconds_count", endpoint=CHAT) == 56
    moved = {"route": "wk-route", "from_deployment": "b/wk-flaky", "to_deployment": "a/wk-main", "reason": "5xx"}
    assert value(samples, "gateway_fallbacks_total", **moved) == 10
    assert value(samples, "gateway_upstream_errors_total", deployment="b/wk-flaky", **{"class": "5xx"}) == 10
    assert value(samples, "gateway_upstream_latency_seconds_count", deployment="a/wk-main") == 50
    assert value(samples, "gateway_upstream_attempts_total", deployment="a/wk-main", outcome="ok") == 50
    tokens = {"deployment": "a/wk-main"}
    assert value(samples, "gateway_tokens_total", **tokens, kind="prompt") == sum(p for _, p, _ in results)
    assert value(samples, "gateway_tokens_total", **tokens, kind="completion") == sum(c for _, _, c in results)
    assert value(samples, "gateway_time_to_first_token_seconds_count", deployment="a/wk-main") == 10
    assert value(samples, "gateway_inflight_requests") == 0
    # Headroom is the fleet's (the buckets are in Redis): 50 of 120 a minute taken, 2 a second refilled since.
    ratio = value(scrape(gateway.url), "gateway_bucket_headroom_ratio", deployment="a/wk-main")
    assert 0.55 <= ratio <= 0.85, ratio


def counters(samples: Samples) -> Samples:
    """The counters and histogram counts: what must be the same in every scrape of a workload at rest."""
    return {k: v for k, v in samples.items() if k[0].endswith(("_total", "_count"))}


def worker(metrics_dir: Path, pid: int, kind: str, scratch: Path) -> CollectorRegistry:
    """One worker's own values of one kind (``counter``, ``gauge_livesum``...), read from its file as a scrape
    reads every worker's."""
    scratch.mkdir(exist_ok=True)
    for old in scratch.iterdir():
        old.unlink()
    shutil.copy(metrics_dir / f"{kind}_{pid}.db", scratch)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(scratch))
    return registry


def test_a_worker_that_dies_leaves_the_in_flight_count(
    two_workers: tuple[GatewayProcess, Path], fresh_fakes: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    gateway, metrics_dir = two_workers
    fresh_fakes[0].configure(model="wk-slow", latency_ms=4000)
    before = value(scrape(gateway.url), "gateway_requests_total", endpoint=CHAT, model="a/wk-main", status="200")
    assert one_request(gateway, "json")[0] == 200
    with ThreadPoolExecutor(8) as pool:
        body = {"model": "a/wk-slow", "messages": MESSAGES, "max_tokens": 2}
        slow = [pool.submit(httpx.post, f"{gateway.url}{CHAT}", json=body, headers=AUTH, timeout=15) for _ in range(8)]
        deadline = time.monotonic() + 5
        while value(scrape(gateway.url), "gateway_inflight_requests") < 8:
            assert time.monotonic() < deadline, "the slow requests never were all in flight"
            time.sleep(0.05)
        busy = [
            pid
            for pid in worker_pids(gateway)
            if (
                worker(metrics_dir, pid, "gauge_livesum", tmp_path / "one").get_sample_value(
                    "gateway_inflight_requests"
                )
                or 0
            )
            > 0
        ]
        assert busy, "no worker holds a slow request"
        os.kill(busy[0], signal.SIGKILL)  # its requests die with it; uvicorn starts another worker
        deadline = time.monotonic() + 15
        while len(worker_pids(gateway)) < 3:
            assert time.monotonic() < deadline, "uvicorn did not replace the dead worker"
            time.sleep(0.1)
        outcomes = []
        for request in slow:
            try:
                outcomes.append(request.result().status_code)
            except httpx.HTTPError:
                outcomes.append(0)  # held by the worker that died
    assert outcomes.count(0) > 0 and outcomes.count(200) == 8 - outcomes.count(0), outcomes
    deadline = time.monotonic() + 5
    while (at_rest := value(scrape(gateway.url), "gateway_inflight_requests")) != 0:
        assert time.monotonic() < deadline, f"{at_rest} still in flight: the dead worker's count stayed"
        time.sleep(0.1)
    after = value(scrape(gateway.url), "gateway_requests_total", endpoint=CHAT, model="a/wk-main", status="200")
    assert after == before + 1  # what the dead worker had counted stays counted
