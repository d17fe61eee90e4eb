"""The metrics of issue 13 against the real gateway process and fake providers: the gateway's own time per
request (providers' time left out), fallbacks from one deployment to another with the failure's class,
provider errors by class, upstream latency per successful attempt, bucket headroom sampled off the request
path, /metrics behind its own bearer token, and label values that stay bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import TEST_KEY, UPSTREAM_KEY, GatewayProcess, free_port, start_gateway
from observability.scrape import Samples, labelled, scrape, total, value
from policy.support import MESSAGES, NO_CIRCUIT, TIMEOUTS, account, key, write_policy

from gateway.fake.testing import FakeUpstream

METRICS_TOKEN = "metrics-scrape-token-0f1e2d3c"
POLICY = """
routes:
  om-route:
    - name: main
      candidates: [b/om-flaky]
      fallback: [a/om-main]
  om-retried:
    - name: main
      candidates: [a/om-retry]
      retries: {same_deployment: 1, backoff_ms: 300, backoff_max_ms: 600}
defaults:
  retry_on: [429, 5xx, timeout]
  retries: {same_deployment: 0}
"""
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream, fake2: FakeUpstream
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("metrics")
    write_policy(directory / "policies", POLICY)
    port = free_port()
    doc: dict[str, Any] = {
        "server": {"port": port, "timeouts": TIMEOUTS, "shutdown_grace_seconds": 3},
        "circuit": NO_CIRCUIT,
        "providers": {
            "a": account(
                fake.url, {"om-main": {}, "om-slow": {}, "om-retry": {}, "om-limited": {"limits": {"rpm": 60}}}
            ),
            "b": account(fake2.url, {"om-flaky": {}}),
        },
        "keys": [key("tester", TEST_KEY, ["*"], tier="premium")],
        "policies": {"dir": str(directory / "policies")},
        "observability": {"metrics": {"token_env": "METRICS_TOKEN", "headroom_interval_seconds": 0.2}},
    }
    text = yaml.safe_dump(doc, sort_keys=False)
    process = start_gateway(directory / "gw", text, port, env={"METRICS_TOKEN": METRICS_TOKEN})
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _well_behaved(fresh_fakes: tuple[FakeUpstream, FakeUpstream]) -> None:
    """Every test starts from fakes that answer (and leaves them so)."""


def metrics(gateway: GatewayProcess) -> Samples:
    return scrape(gateway.url, METRICS_TOKEN)


def chat(gateway: GatewayProcess, model: str, **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": MESSAGES, "max_tokens": 3, **body}
    auth = {"authorization": f"Bearer {TEST_KEY}"}
    return httpx.post(f"{gateway.url}{CHAT}", json=payload, headers=auth, timeout=15)


def test_a_fallback_is_counted_from_to_with_the_failures_class(gateway: GatewayProcess, fake2: FakeUpstream) -> None:
    before = metrics(gateway)
    for kind in ("timeout", "500", "429"):  # the 429 last: it cools b/om-flaky down for everyone
        fake2.configure(model="om-flaky", failure_kind=kind, failure_rate=1.0)
        answer = chat(gateway, "om-route")
        assert answer.status_code == 200 and answer.headers["x-gateway-deployment"] == "a/om-main", answer.text
    after = metrics(gateway)
    moves = {"route": "om-route", "from_deployment": "b/om-flaky", "to_deployment": "a/om-main"}
    for reason in ("5xx", "429", "timeout"):
        grew = value(after, "gateway_fallbacks_total", **moves, reason=reason) - value(
            before, "gateway_fallbacks_total", **moves, reason=reason
        )
        assert grew == 1, reason
        errors = value(after, "gateway_upstream_errors_total", deployment="b/om-flaky", **{"class": reason})
        assert (
            errors - value(before, "gateway_upstream_errors_total", deployment="b/om-flaky", **{"class": reason}) == 1
        )
    # Each answer came from one successful attempt on a/om-main: one latency observation each.
    latency = "gateway_upstream_latency_seconds_count"
    assert value(after, latency, deployment="a/om-main") - value(before, latency, deployment="a/om-main") == 3
    assert value(after, latency, deployment="b/om-flaky") == 0  # failures are errors, not latencies


def test_a_provider_error_that_ends_the_request_is_counted_without_a_fallback(
    gateway: GatewayProcess, fake: FakeUpstream
) -> None:
    before = metrics(gateway)
    fake.configure(model="om-main", failure_kind="context_length", failure_rate=1.0)
    assert chat(gateway, "a/om-main").status_code == 400
    after = metrics(gateway)
    errors = {"deployment": "a/om-main", "class": "context_length"}
    assert (
        value(after, "gateway_upstream_errors_total", **errors)
        - value(before, "gateway_upstream_errors_total", **errors)
        == 1
    )
    assert total(after, "gateway_fallbacks_total", from_deployment="a/om-main") == total(
        before, "gateway_fallbacks_total", from_deployment="a/om-main"
    )


def test_overhead_is_the_gateways_own_time_not_the_providers(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    """A provider that takes 200 ms before its headers, and a stream 200 ms more before its first chunk: the
    requests take that long, the gateway's own time per request stays a few milliseconds."""
    fake.configure(model="om-slow", latency_ms=200, ttft_ms=200)
    before = metrics(gateway)
    assert chat(gateway, "om-slow").status_code == 200
    with httpx.stream(
        "POST",
        f"{gateway.url}{CHAT}",
        json={"model": "om-slow", "messages": MESSAGES, "max_tokens": 3, "stream": True},
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=15,
    ) as stream:
        assert stream.status_code == 200 and "[DONE]" in stream.read().decode()
    after = metrics(gateway)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    endpoint = {"endpoint": CHAT}
    assert grew("gateway_request_duration_seconds_count", **endpoint) == 2
    assert grew("gateway_overhead_seconds_count", **endpoint) == 2
    assert grew("gateway_request_duration_seconds_sum", **endpoint) >= 0.6  # 200 ms (JSON) + 400 ms (stream)
    assert grew("gateway_upstream_latency_seconds_sum", deployment="a/om-slow") >= 0.6  # the same, per attempt
    assert grew("gateway_overhead_seconds_sum", **endpoint) < 0.1  # a few ms each, on a loaded machine


def test_the_backoff_before_a_retry_is_waiting_on_the_provider_not_overhead(
    gateway: GatewayProcess, fake: FakeUpstream
) -> None:
    fake.configure(model="om-retry", failure_kind="500", fail_next=1)  # the first try fails, the retry answers
    before = metrics(gateway)
    answer = chat(gateway, "om-retried")
    assert answer.status_code == 200 and answer.headers["x-gateway-attempts"] == "2", answer.text
    after = metrics(gateway)
    endpoint = {"endpoint": CHAT}
    duration = value(after, "gateway_request_duration_seconds_sum", **endpoint) - value(
        before, "gateway_request_duration_seconds_sum", **endpoint
    )
    own = value(after, "gateway_overhead_seconds_sum", **endpoint) - value(
        before, "gateway_overhead_seconds_sum", **endpoint
    )
    assert duration >= 0.3 and own < 0.1, (duration, own)  # a backoff of 300 ms or more, then the retry
    assert value(after, "gateway_fallbacks_total", route="om-retried", from_deployment="a/om-retry") == 0


def test_headroom_is_sampled_per_limited_deployment(gateway: GatewayProcess) -> None:
    """om-limited allows 60 requests a minute (one a second refilled): 20 requests leave about two thirds."""
    for _ in range(20):
        assert chat(gateway, "om-limited").status_code == 200
    deadline = time.monotonic() + 5
    while True:
        ratio = value(metrics(gateway), "gateway_bucket_headroom_ratio", deployment="a/om-limited")
        if ratio < 0.85 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 0.55 < ratio < 0.85, ratio  # 40 left, plus one a second refilled since (a few seconds)
    limited = {d["deployment"] for d in labelled(metrics(gateway), "gateway_bucket_headroom_ratio")}
    assert limited == {"a/om-limited"}  # deployments without limits have no buckets to report on


def test_metrics_want_their_bearer_token(gateway: GatewayProcess) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-token"}, {"authorization": f"Bearer {TEST_KEY}"}):
        refused = httpx.get(f"{gateway.url}/metrics", headers=headers, timeout=5)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert refused.json()["error"]["code"] == "invalid_metrics_token"
        assert "gateway_" not in refused.text
    assert (
        "gateway_requests_total"
        in httpx.get(f"{gateway.url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5).text
    )
    assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200  # probes need no token
    assert METRICS_TOKEN not in gateway.logs()


def test_label_values_stay_bounded(gateway: GatewayProcess, fake2: FakeUpstream) -> None:
    """End users, keys, prompts and providers' error text never become label values."""
    end_user, prompt = "alice-0042@example.com", "a prompt that must stay out of labels"
    fake2.configure(model="om-flaky", failure_kind="500", failure_rate=1.0)
    chat(gateway, "om-route", user=end_user, messages=[{"role": "user", "content": prompt}])
    chat(gateway, "no-such-model-9f8e", user=end_user)
    httpx.post(
        f"{gateway.url}{CHAT}",
        json={"model": "om-main", "messages": MESSAGES},
        headers={"authorization": "Bearer sk-unknown-77"},
    )
    text = httpx.get(f"{gateway.url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5).text
    for leak in (
        end_user,
        prompt,
        "sk-unknown-77",
        TEST_KEY,
        UPSTREAM_KEY,
        "no-such-model-9f8e",
        "server had an error",
    ):
        assert leak not in text, leak
    samples = metrics(gateway)
    assert {d["class"] for d in labelled(samples, "gateway_upstream_errors_total")} <= {
        "5xx",
        "429",
        "timeout",
        "connection",
        "context_length",
        "4xx",
    }
    assert {d["reason"] for d in labelled(samples, "gateway_fallbacks_total")} <= {
        "5xx",
        "429",
        "timeout",
        "connection",
    }


def test_one_worker_with_an_operator_metrics_dir_starts_from_a_clean_one(
    tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    """PROMETHEUS_MULTIPROC_DIR set by the operator (an emptyDir that outlives a container): what an earlier
    run left there (a circuit open, requests counted) must not show in the new run's /metrics."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    text = yaml.safe_dump(
        {
            "server": {"port": 0, "access_log": False},
            "circuit": NO_CIRCUIT,
            "providers": {"a": account(fake.url, {"om-main": {}})},
            "keys": [key("tester", TEST_KEY, ["*"])],
            "policies": {"dir": ""},
        }
    )
    for run in range(2):
        port = free_port()
        process = start_gateway(
            tmp_path / f"gw{run}",
            text.replace("port: 0", f"port: {port}"),
            port,
            env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        )
        try:
            assert chat(process, "om-main").status_code == 200
            samples = scrape(process.url)
        finally:
            process.stop()
        counted = value(samples, "gateway_requests_total", endpoint=CHAT, model="om-main", status="200")
        assert counted == 1, f"run {run}: {counted}"
