"""The shipped policies/platform.yaml: valid against config/gateway.yaml, and what it decides, as a table.

Change the table when you change the policy on purpose; a change that moves these rows by accident
is what this test is for.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from harness import EXAMPLE_CONFIG, example_config_env

from gateway.config import Settings, VirtualKey, load_settings
from gateway.providers import REGISTRY
from gateway.routing.features import features_from, refine
from gateway.routing.policy import Policy
from gateway.routing.policy_load import load_policies
from gateway.routing.select import Plan, plan
from gateway.routing.snapshot import DeploymentState, Snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(str(EXAMPLE_CONFIG), example_config_env(tmp_path_factory.mktemp("keys")), kinds=REGISTRY)


@pytest.fixture(scope="module")
def policy(settings: Settings) -> Policy:
    return load_policies(settings.policy_dir, {d.id: d for d in settings.deployments})


def test_the_shipped_policy_is_valid_for_the_shipped_config(settings: Settings, policy: Policy) -> None:
    assert Path(settings.policy_dir).resolve() == ROOT / "policies"
    assert policy.files == (str(ROOT / "policies" / "platform.yaml"),)
    assert policy.names() == ("agent-default", "auto")
    assert not set(policy.names()) & {d.model for d in settings.deployments}  # no configured model is taken over
    assert policy.thresholds("auto") == (120000, 128000, 131072, 1000000, 1048576)
    assert len(policy.version) == 12


WORKERS = VirtualKey(name="workers", key_sha256="0" * 64, tier="standard", models=frozenset({"*"}))
SMALL = [{"role": "user", "content": "Summarise this ticket in one line."}]
LONG = [{"role": "user", "content": "word " * 140_000}]  # 140k tokens exactly, ~233k by the estimate
VISION = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
OPEN = DeploymentState(circuit="open", retry_in=20)

# name: (key, body, headers, snapshot, rule, planned deployments, excluded {deployment: kind})
TABLE: dict[
    str, tuple[str, dict[str, Any], dict[str, str], dict[str, DeploymentState], str, list[str], dict[str, str]]
] = {
    "premium": (
        "agent-platform",
        {},
        {},
        {},
        "premium",
        [
            "openai-main/gpt-4o",
            "azure-eastus/gpt-4o",
            "anthropic/claude-sonnet-5-5",
            "gemini/gemini-2.5-flash",
            "openai-main/gpt-4o-mini",
            "groq/llama-3.1-8b-instant",
            "local-vllm/llama-3.1-70b",
        ],
        {},
    ),
    "premium, OpenAI's gpt-4o circuit open": (
        "agent-platform",
        {},
        {},
        {"openai-main/gpt-4o": OPEN},
        "premium",
        [
            "azure-eastus/gpt-4o",
            "anthropic/claude-sonnet-5-5",
            "gemini/gemini-2.5-flash",
            "openai-main/gpt-4o-mini",
            "groq/llama-3.1-8b-instant",
            "local-vllm/llama-3.1-70b",
        ],
        {"openai-main/gpt-4o": "circuit_open"},
    ),
    "long prompt": (
        "workers",
        {"messages": LONG},
        {},
        {},
        "long-prompt",
        ["gemini/gemini-2.5-flash", "anthropic/claude-sonnet-5-5"],
        {"local-vllm/llama-3.1-70b": "context_window"},
    ),
    "simple task": (
        "workers",
        {"metadata": {"task": "classify"}},
        {},
        {},
        "simple",
        ["groq/llama-3.1-8b-instant", "openai-main/gpt-4o-mini", "local-vllm/llama-3.1-70b"],
        {},
    ),
    "simple task, OpenAI faster today": (
        "workers",
        {},
        {"x-gateway-task": "simple"},
        {
            "openai-main/gpt-4o-mini": DeploymentState(latency_ms=400),
            "groq/llama-3.1-8b-instant": DeploymentState(latency_ms=900),
        },
        "simple",
        ["openai-main/gpt-4o-mini", "groq/llama-3.1-8b-instant", "local-vllm/llama-3.1-70b"],
        {},
    ),
    "default": (
        "workers",
        {},
        {},
        {"openai-main/gpt-4o-mini": DeploymentState(headroom=0.1, inflight=40)},
        "standard",
        ["gemini/gemini-2.5-flash", "openai-main/gpt-4o-mini", "groq/llama-3.1-8b-instant", "local-vllm/llama-3.1-70b"],
        {},
    ),
    "trusted service key acting for a standard user": (
        "agent-platform",
        {},
        {"x-gateway-tier": "standard"},
        {},
        "standard",
        ["openai-main/gpt-4o-mini", "gemini/gemini-2.5-flash", "groq/llama-3.1-8b-instant", "local-vllm/llama-3.1-70b"],
        {},
    ),
    "tools required": (
        "workers",
        {"tools": TOOLS, "metadata": {"task": "simple"}},
        {},
        {},
        "simple",
        ["groq/llama-3.1-8b-instant", "openai-main/gpt-4o-mini", "local-vllm/llama-3.1-70b"],
        {},
    ),
    "vision required": (
        "workers",
        {"messages": VISION, "metadata": {"task": "simple"}},
        {},
        {},
        "simple",
        ["openai-main/gpt-4o-mini"],
        {"groq/llama-3.1-8b-instant": "capabilities", "local-vllm/llama-3.1-70b": "capabilities"},
    ),
    "key not allowed some deployments": (
        "batch-jobs",
        {},
        {},
        {},
        "standard",
        ["openai-main/gpt-4o-mini", "groq/llama-3.1-8b-instant"],
        {"gemini/gemini-2.5-flash": "not_allowed", "local-vllm/llama-3.1-70b": "not_allowed"},
    ),
}


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
def test_platform_decisions(settings: Settings, policy: Policy, row: tuple[Any, ...]) -> None:
    key_name, body, headers, states, rule, planned, excluded = row
    key = WORKERS if key_name == "workers" else next(k for k in settings.keys if k.name == key_name)
    request = {"model": "agent-default", "messages": SMALL, **body}
    trusted = key_name == "agent-platform"  # the agent platform's key is the trusted service key
    f = refine(features_from(request, key, headers, "chat", trusted), policy.thresholds("agent-default"))
    deployments = {d.id: d for d in settings.deployments}
    found: Plan | None = plan(policy, f, Snapshot(states), random.Random(0), deployments)
    assert found is not None
    assert (found.route, found.rule) == ("agent-default", rule)
    assert list(found.deployments) == planned
    assert {x.deployment: x.kind for x in found.excluded} == excluded


def test_the_alias_plans_like_the_route(settings: Settings, policy: Policy) -> None:
    key = next(k for k in settings.keys if k.name == "agent-platform")
    f = features_from({"model": "auto", "messages": SMALL}, key, {}, "chat", False)
    found = plan(policy, f, Snapshot(), random.Random(0), {d.id: d for d in settings.deployments})
    assert found is not None and (found.route, found.rule) == ("agent-default", "premium")
