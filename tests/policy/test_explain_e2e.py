"""Explaining routing decisions: ``gateway explain`` on the shipped example, ``POST /admin/explain`` live."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from harness import ADMIN_KEY, TEST_KEY, example_config_env
from policy.support import MESSAGES, Launch, account, chat, config, key, write_policy

from gateway.fake.testing import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.yaml"  # its policies are ../policies: the repository's platform.yaml
HELLO = {"model": "agent-default", "messages": MESSAGES}
# About 135k real tokens (the estimate says more): over the 120k of rule long-prompt, and with max_tokens
# over local-vllm's 131072-token window whichever count decides.
LONG = {"model": "agent-default", "messages": [{"role": "user", "content": "hello " * 135_000}], "max_tokens": 1000}
SHAPE = {"policy_version", "features", "rule", "plan", "outcome"}


@pytest.fixture(scope="module")
def example_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What config/gateway.yaml needs from the environment (as tests/config/test_parse.py sets it)."""
    return {**os.environ, **example_config_env(tmp_path_factory.mktemp("explain"))}


def explain_cli(env: dict[str, str], request: dict[str, Any], directory: Path, *args: str) -> dict[str, Any]:
    path = directory / "request.json"
    path.write_bytes(orjson.dumps(request))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "explain", "--config", str(EXAMPLE), str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout)
    assert set(result) == SHAPE
    return result


def plan_of(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["deployment"], e["stage"]) for e in result["plan"]["entries"]]


def excluded_of(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(x["deployment"], x["kind"], x["stage"], x["reason"]) for x in result["plan"]["excluded"]]


ECONOMY_REST = [("groq/llama-3.1-8b-instant", "fallback"), ("local-vllm/llama-3.1-70b", "fallback")]


def test_explain_the_shipped_policy_for_a_premium_key(example_env: dict[str, str], tmp_path: Path) -> None:
    result = explain_cli(example_env, HELLO, tmp_path, "--key", "agent-platform")
    assert result["features"]["tier"] == "premium"
    assert result["rule"] == "agent-default/premium" and result["plan"]["strategy"] == "priority"
    assert plan_of(result) == [
        ("openai-main/gpt-4o", "candidate"),
        ("azure-eastus/gpt-4o", "candidate"),
        ("anthropic/claude-sonnet-5-5", "fallback"),
        ("gemini/gemini-2.5-flash", "fallback"),
        ("openai-main/gpt-4o-mini", "fallback"),
        *ECONOMY_REST,
    ]
    assert excluded_of(result) == []
    assert result["outcome"] == {"status": 200, "first_choice": "openai-main/gpt-4o"}


def test_explain_the_shipped_policy_for_a_long_prompt(example_env: dict[str, str], tmp_path: Path) -> None:
    result = explain_cli(example_env, LONG, tmp_path)
    assert result["features"]["prompt_tokens"] > 120_000
    assert result["rule"] == "agent-default/long-prompt"
    assert plan_of(result) == [("gemini/gemini-2.5-flash", "candidate"), ("anthropic/claude-sonnet-5-5", "candidate")]
    [(deployment, kind, stage, reason)] = excluded_of(result)
    assert (deployment, kind, stage) == ("local-vllm/llama-3.1-70b", "context_window", "fallback")
    assert reason.startswith("needs ") and reason.endswith("its context window is 131072")


def test_explain_the_shipped_policy_for_a_simple_task(example_env: dict[str, str], tmp_path: Path) -> None:
    result = explain_cli(example_env, HELLO, tmp_path, "--header", "x-gateway-task:simple")
    assert result["features"]["task"] == "simple"
    assert result["rule"] == "agent-default/simple" and result["plan"]["strategy"] == "lowest-latency"
    # No latency known yet: the listed order breaks the tie, Groq first; the economy chain's repeats are dropped.
    assert plan_of(result) == [
        ("groq/llama-3.1-8b-instant", "candidate"),
        ("openai-main/gpt-4o-mini", "candidate"),
        ("local-vllm/llama-3.1-70b", "fallback"),
    ]
    assert [e["why"] for e in result["plan"]["entries"][:2]] == ["lowest-latency: latency unknown"] * 2
    assert excluded_of(result) == []


def test_explain_the_shipped_policy_by_default(example_env: dict[str, str], tmp_path: Path) -> None:
    result = explain_cli(example_env, HELLO, tmp_path)
    assert result["rule"] == "agent-default/standard" and result["plan"]["strategy"] == "least-loaded"
    assert plan_of(result) == [
        ("openai-main/gpt-4o-mini", "candidate"),
        ("gemini/gemini-2.5-flash", "candidate"),
        *ECONOMY_REST,
    ]
    assert excluded_of(result) == []
    # The same request from a key allowed only two models: the others are excluded, each with its reason.
    limited = explain_cli(example_env, HELLO, tmp_path, "--key", "batch-jobs")
    assert limited["rule"] == "agent-default/standard"
    assert plan_of(limited) == [("openai-main/gpt-4o-mini", "candidate"), ("groq/llama-3.1-8b-instant", "fallback")]
    assert excluded_of(limited) == [
        ("gemini/gemini-2.5-flash", "not_allowed", "candidate", "key 'batch-jobs' may not use it"),
        ("local-vllm/llama-3.1-70b", "not_allowed", "fallback", "key 'batch-jobs' may not use it"),
    ]
    assert limited["policy_version"] == result["policy_version"] and len(result["policy_version"]) == 12


EXPLAIN_POLICY = """
routes:
  ex:
    - name: premium
      match: {tier: premium}
      candidates: [a/ex-big]
      fallback: [b/ex-small]
    - name: rest
      candidates: [b/ex-small]
"""


def test_admin_explain_shows_the_live_decision_and_sends_nothing_upstream(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    providers = {
        "a": account(fake.url, {"ex-big": {"context_window": 100_000}}),
        "b": account(fake2.url, {"ex-small": {"context_window": 1000}}),
    }
    keys = [key("tester", TEST_KEY, ["*"], tier="premium")]
    write_policy(policy_dir, EXPLAIN_POLICY)
    gateway = launch(lambda port: config(port, providers, policy_dir, keys=keys))
    url = f"{gateway.url}/admin/explain"
    query = {"request": {"model": "ex", "messages": MESSAGES, "max_tokens": 2000}, "key": "tester"}

    assert httpx.post(url, json=query, timeout=10).status_code == 401
    denied = httpx.post(url, json=query, headers={"authorization": f"Bearer {TEST_KEY}"}, timeout=10)
    assert denied.status_code == 403

    def ask(body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(url, json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    premium = ask(query)
    assert set(premium) == SHAPE
    assert premium["rule"] == "ex/premium" and premium["features"]["key_name"] == "tester"
    assert plan_of(premium) == [("a/ex-big", "candidate")]
    [(deployment, kind, stage, reason)] = excluded_of(premium)
    assert (deployment, kind, stage) == ("b/ex-small", "context_window", "fallback")
    assert reason.endswith("its context window is 1000") and "2000 max_tokens" in reason
    assert premium["outcome"] == {"status": 200, "first_choice": "a/ex-big"}

    # Without a key it explains as a standard-tier caller: the catch-all, whose only deployment is too small.
    standard = ask({"request": query["request"]})
    assert standard["rule"] == "ex/rest" and plan_of(standard) == []
    assert standard["outcome"]["status"] == 400 and standard["outcome"]["code"] == "context_length_exceeded"
    # A trusted header can assert the tier, as a service key would.
    assert ask({"request": query["request"], "headers": {"x-gateway-tier": "premium"}})["rule"] == "ex/premium"
    unknown = httpx.post(url, json={**query, "key": "nobody"}, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert unknown.status_code == 400

    assert fake.stats()["requests_total"] == 0 and fake2.stats()["requests_total"] == 0  # nothing was sent
    # And the real request goes where the explanation said.
    served = chat(gateway, "ex", max_tokens=2000)
    assert served.status_code == 200, served.text
    assert (served.headers["x-gateway-rule"], served.headers["x-gateway-deployment"]) == ("ex/premium", "a/ex-big")
