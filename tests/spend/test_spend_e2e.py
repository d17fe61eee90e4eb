"""Spend end to end: prices on the answers, the ledger behind GET /admin/spend, budgets per key, end user
and tier, their isolation, the metrics and the alert lines, against the real gateway process on Redis.

Costs are computed here by hand from the prices in ``support.MODELS`` and the usage the fake reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from harness import ADMIN_KEY, UPSTREAM_KEY, GatewayProcess, free_port, start_gateway
from ratelimit.support import on_redis, wait_for
from redis_procs import SHARED_URL
from spend import support
from spend.support import M

from gateway.fake.testing import FakeUpstream

HI = [{"role": "user", "content": "Hi"}]
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
KEYS = [
    support.key("small", "small-secret", budget={"daily_usd": 0.05, "monthly_usd": 10}),
    support.key("other", "other-secret", budget={"daily_usd": 5}),
    support.key("users", "users-secret", user_budget={"daily_usd": 0.03}),
    support.key("g1", "g1-secret", tier="gold"),
    support.key("g2", "g2-secret", tier="gold"),
    support.key("free", "free-secret"),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[GatewayProcess]:
    port = free_port()
    prefix = f"spend-{os.getpid()}-{time.monotonic_ns()}"
    text = support.config(
        port, upstream.url, keys=KEYS, redis_url=SHARED_URL, prefix=prefix, tiers={"gold": {"daily_usd": 0.02}}
    )
    process = start_gateway(tmp_path_factory.mktemp("spend"), text, port)
    on_redis(process)
    yield process
    process.stop()


def client(gateway: GatewayProcess, secret: str) -> openai.OpenAI:
    return gateway.client(secret)


def spend(gateway: GatewayProcess, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}/admin/spend", params=params, headers=ADMIN, timeout=5)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def cost_of(raw: Any) -> float:
    return float(raw.headers["x-gateway-cost-usd"].lstrip("~"))


def test_json_answers_are_priced_from_their_usage(gateway: GatewayProcess) -> None:
    raw = client(gateway, "free-secret").chat.completions.with_raw_response.create(
        model="premium", messages=HI, max_tokens=20
    )
    usage = raw.parse().usage
    assert usage is not None and usage.completion_tokens == 20
    assert cost_of(raw) == pytest.approx(usage.prompt_tokens * 10 * M + 20 * 400 * M, abs=1e-6)
    assert not raw.headers["x-gateway-cost-usd"].startswith("~")


def test_cached_prompt_tokens_cost_the_cache_price(gateway: GatewayProcess, upstream: FakeUpstream) -> None:
    upstream.configure(model="gpt-4o-mini", cached_tokens=6)
    try:
        raw = client(gateway, "free-secret").chat.completions.with_raw_response.create(
            model="cached", messages=HI, max_tokens=3
        )
    finally:
        upstream.configure(model="gpt-4o-mini", cached_tokens=0)
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    assert cached == min(6, usage.prompt_tokens) > 0
    expected = (usage.prompt_tokens - cached) * 2.5 * M + cached * 1.25 * M + 3 * 10 * M
    assert cost_of(raw) == pytest.approx(expected, abs=1e-6)


def test_embeddings_are_priced(gateway: GatewayProcess) -> None:
    raw = client(gateway, "free-secret").embeddings.with_raw_response.create(model="embed", input="a few words")
    assert cost_of(raw) == pytest.approx(raw.parse().usage.prompt_tokens * 20 * M, abs=1e-9)


@pytest.mark.parametrize("include_usage", [False, True])
def test_streams_are_priced_from_the_usage_the_gateway_asks_for(gateway: GatewayProcess, include_usage: bool) -> None:
    secret, name = "small-secret", "small"
    before = spend(gateway, key=name)["keys"]
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with client(gateway, secret).chat.completions.with_streaming_response.create(
        model="flat", messages=HI, max_tokens=5, stream=True, **options
    ) as raw:
        assert raw.headers["x-gateway-cost-usd"] == "~0.005000"  # the maximum, before any usage exists
        chunks = list(raw.parse())
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == (1 if include_usage else 0)  # asked for upstream either way; relayed only if asked
    spent = before[0]["usd"] if before else 0.0
    wait_for(lambda: spend(gateway, key=name)["keys"][0]["usd"] > spent + 1e-9, timeout=5)
    assert spend(gateway, key=name)["keys"][0]["usd"] == pytest.approx(spent + 0.005, abs=1e-9)


def test_a_key_over_its_budget_is_refused_until_its_window_ends(gateway: GatewayProcess) -> None:
    small = client(gateway, "small-secret")
    while True:  # 0.02 each against 0.05 a day (less what the stream test spent): the last one takes what is left
        try:
            small.chat.completions.create(model="flat", messages=HI, max_tokens=20)
        except openai.RateLimitError as e:
            refused = e
            break
    error = refused.body
    assert isinstance(error, dict) and error["code"] == "budget_exceeded"
    assert "this key's daily budget (USD 0.05)" in error["message"] and "small" not in error["message"]
    now = time.time()
    until_midnight = 86_400 - now % 86_400
    assert abs(int(refused.response.headers["retry-after"]) - until_midnight) <= 2
    wait_for(lambda: spend(gateway, key="small")["budgets"][0]["spent_usd"] >= 0.05, timeout=5)
    (daily,) = spend(gateway, key="small")["budgets"]
    assert daily["budget"] == "key:small:day" and 0.05 <= daily["spent_usd"] <= 0.05 + 0.02  # one request past it
    (monthly,) = spend(gateway, key="small", window="month")["budgets"]
    assert monthly["budget"] == "key:small:month" and monthly["spent_usd"] == daily["spent_usd"]
    assert monthly["used"] == pytest.approx(daily["spent_usd"] / 10, abs=1e-4)

    # Its cost in the counter (never an end user among the labels), its budget's gauge, one alert line per share.
    text = httpx.get(f"{gateway.url}/metrics").text
    lines = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line[:1] != "#"}
    labels = 'deployment="acct/flat",key="small",route="flat",tier="standard"'
    assert lines[f"gateway_cost_usd_total{{{labels}}}"] == pytest.approx(daily["spent_usd"])
    assert lines['gateway_budget_used_ratio{budget="key:small:day"}'] >= 1.0
    alerts = [json.loads(line) for line in gateway.logs().splitlines() if '"budget_alert"' in line]
    small = [a for a in alerts if a["budget"] == "key:small:day"]
    assert [a["threshold"] for a in small] == [0.5, 0.8, 1.0]  # each once in the window
    assert all(a["cap_usd"] == 0.05 and a["window"] == time.strftime("%Y-%m-%d", time.gmtime()) for a in small)
    # Another key, the same end user: untouched, and nothing of the first key's budget in its answers.
    other = client(gateway, "other-secret").chat.completions.with_raw_response.create(
        model="flat", messages=HI, max_tokens=20, user="shared-user"
    )
    assert other.status_code == 200
    assert not any("small" in v or "budget" in k for k, v in other.headers.items())
    assert [b["budget"] for b in spend(gateway, key="other")["budgets"]] == ["key:other:day"]


def test_each_end_user_has_a_budget_of_their_own(gateway: GatewayProcess) -> None:
    users = client(gateway, "users-secret")
    for _ in range(2):  # 0.02 each against 0.03: the second takes the 0.01 left, and spends 0.02
        users.chat.completions.create(model="flat", messages=HI, max_tokens=20, user="alice")
    with pytest.raises(openai.RateLimitError) as refused:
        users.chat.completions.create(model="flat", messages=HI, max_tokens=20, user="alice")
    assert "this end user's daily budget (USD 0.03)" in str(refused.value)
    users.chat.completions.create(model="flat", messages=HI, max_tokens=20, user="bob")  # bob has his own
    wait_for(lambda: len(spend(gateway, key="users")["end_users"]) == 2, timeout=5)
    top = spend(gateway, key="users", top=1)["end_users"]
    assert top == [{"key": "users", "end_user": "alice", "usd": pytest.approx(0.04), "requests": 2}]
    alice = spend(gateway, end_user="alice")
    assert alice["end_users"] == [{"key": "users", "end_user": "alice", "usd": pytest.approx(0.04), "requests": 2}]
    assert [b["budget"] for b in alice["budgets"]] == ["user:users:day"]
    # End users never become metric label values.
    assert "alice" not in httpx.get(f"{gateway.url}/metrics").text


def test_a_tier_budget_is_shared_by_the_keys_of_the_tier(gateway: GatewayProcess) -> None:
    client(gateway, "g1-secret").chat.completions.create(model="flat", messages=HI, max_tokens=20)  # 0.02 of 0.02
    with pytest.raises(openai.RateLimitError) as refused:
        client(gateway, "g2-secret").chat.completions.create(model="flat", messages=HI, max_tokens=1)
    assert "the gold tier's daily budget (USD 0.02)" in str(refused.value)
    assert [b["budget"] for b in spend(gateway, tier="gold")["budgets"]] == ["tier:gold:day"]


def test_the_admin_view_answers_filters_and_refuses_nonsense(gateway: GatewayProcess) -> None:
    # Spend of its own: the quick suite spreads this module's tests over processes, each with its own gateway.
    client(gateway, "other-secret").chat.completions.create(model="flat", messages=HI, max_tokens=20)
    wait_for(lambda: "acct/flat" in {d["deployment"] for d in spend(gateway)["deployments"]}, timeout=5)
    whole = spend(gateway)
    assert {"total", "keys", "tiers", "deployments", "routes", "end_users", "budgets"} <= set(whole)
    assert whole["total"]["usd"] > 0
    assert whole["total"]["usd"] == pytest.approx(sum(k["usd"] for k in whole["keys"]))
    assert "key:other:day" in {b["budget"] for b in whole["budgets"]}
    for params, param in [({"key": "nobody"}, "key"), ({"window": "yesterday"}, "window"), ({"top": "-1"}, "top")]:
        answer = httpx.get(f"{gateway.url}/admin/spend", params=params, headers=ADMIN)
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, param)
    assert httpx.get(f"{gateway.url}/admin/spend", params={"colour": "red"}, headers=ADMIN).status_code == 400
    assert httpx.get(f"{gateway.url}/admin/spend").status_code == 401
    shown = httpx.get(f"{gateway.url}/admin/config", headers=ADMIN).json()
    assert shown["keys"][0]["budget"] == {"daily_usd": 0.05, "monthly_usd": 10}
    assert shown["keys"][2]["user_budget"] == {"daily_usd": 0.03, "monthly_usd": None}
    assert "budget" not in shown["keys"][5] and shown["budgets"]["tiers"]["gold"]["daily_usd"] == 0.02
    assert httpx.get(f"{gateway.url}/admin/spend", headers={"authorization": "Bearer small-secret"}).status_code == 403


def test_the_command_line_reads_the_same_ledger(gateway: GatewayProcess, tmp_path: Path) -> None:
    config = gateway.log_path.parent / "gateway.yaml"
    env = {**os.environ, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY, "GATEWAY_ADMIN_KEY": ADMIN_KEY}
    command = [sys.executable, "-m", "gateway", "spend", "--key", "other"]
    from_redis = subprocess.run([*command, "--config", str(config)], capture_output=True, text=True, env=env)
    assert from_redis.returncode == 0, from_redis.stderr
    from_gateway = subprocess.run([*command, "--url", gateway.url], capture_output=True, text=True, env=env)
    assert from_gateway.returncode == 0, from_gateway.stderr
    assert (
        json.loads(from_redis.stdout)["keys"]
        == json.loads(from_gateway.stdout)["keys"]
        == spend(gateway, key="other")["keys"]
    )
    wrong = subprocess.run(
        [*command, "--url", gateway.url], capture_output=True, text=True, env={**env, "GATEWAY_ADMIN_KEY": "x"}
    )
    assert wrong.returncode == 1 and "admin" in wrong.stdout
