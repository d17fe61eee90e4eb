"""The configuration used when none is given: real providers if their keys are set, else the demo.

The demo is the shipped example (``config/gateway.yaml``'s provider accounts, ``policies/``'s routing
policy) served against the built-in fake providers (``gateway fake-upstream``): every account the
example names lives on one fake process, which the CLI starts on a free loopback port and announces
through ``GATEWAY_DEMO_UPSTREAM``. The example policy is read from the source tree the gateway runs
from, so it is found whatever the current directory, and edits to it hot-reload into the demo.

With one or more provider keys in the environment the default serves those providers' usual models
and no routing policy (the example's accounts would not exist); ``GATEWAY_POLICY_DIR`` names one. Anthropic
comes from ``ANTHROPIC_API_KEY`` (as OpenAI from ``OPENAI_API_KEY``); Bedrock from an AWS credential chain
the environment shows, with ``AWS_REGION`` (``_bedrock``). The two serve Claude under the same names, so
with both a model falls back from one to the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEMO_KEY = "demo-key"
DEMO_PREMIUM_KEY = "demo-premium-key"
DEMO_ADMIN_KEY = "demo-admin-key"
DEMO_UPSTREAM_KEY = "demo-upstream-key"
DEMO_UPSTREAM_ENV = "GATEWAY_DEMO_UPSTREAM"
DEMO_UPSTREAM_KEY_ENV = "GATEWAY_DEMO_UPSTREAM_KEY"
POLICY_DIR_ENV = "GATEWAY_POLICY_DIR"

# Provider kind -> (env var holding its key, env var overriding its base URL, models it serves by default).
REAL_PROVIDERS: dict[str, tuple[str, str, dict[str, dict[str, Any]]]] = {
    "openai": (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        {"gpt-4o-mini": {}, "gpt-4o": {}, "text-embedding-3-small": {}},
    ),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", {"claude-sonnet-5-5": {}, "claude-haiku-5-5": {}}),
    "groq": ("GROQ_API_KEY", "GROQ_BASE_URL", {"llama-3.1-8b-instant": {}, "llama-3.3-70b-versatile": {}}),
    "gemini": ("GEMINI_API_KEY", "GEMINI_BASE_URL", {"gemini-2.5-flash": {}, "gemini-2.5-pro": {}}),
}

# AWS Bedrock joins them when the environment shows an AWS credential chain and a region; the chain itself
# (keys, profile, web identity / IRSA, container role) is resolved at start. An instance role alone is not
# visible without asking the instance: name such an account in a config file. AWS_ENDPOINT_URL_BEDROCK_RUNTIME
# points it elsewhere, as it does for the AWS SDKs; a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK) replaces signing.
AWS_CHAIN_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_BEARER_TOKEN_BEDROCK",
)
BEDROCK_MODELS: dict[str, dict[str, Any]] = {
    "claude-sonnet-5-5": {"upstream_model": "global.anthropic.claude-sonnet-5-5"},
    "claude-haiku-5-5": {"upstream_model": "global.anthropic.claude-haiku-5-5"},
}


def _bedrock(env: Mapping[str, str]) -> dict[str, Any] | None:
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region or not any(env.get(name) for name in AWS_CHAIN_VARS):
        return None
    account: dict[str, Any] = {"kind": "bedrock", "region": region, "models": BEDROCK_MODELS}
    if env.get("AWS_BEARER_TOKEN_BEDROCK"):
        account["api_key_env"] = "AWS_BEARER_TOKEN_BEDROCK"
    if env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        account["base_url"] = env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    return account


# The example's accounts (config/gateway.yaml), each on the demo's fake upstream under the path its
# kind uses. tests/test_demo.py keeps the two in step.
DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "openai-main": {
        "kind": "openai",
        "path": "/v1",
        "limits": {"rpm": 5000, "tpm": 2000000},
        "models": {
            "gpt-4o-mini": {},
            "gpt-4o": {"limits": {"rpm": 500, "tpm": 300000}},
            "text-embedding-3-small": {},
        },
    },
    "azure-eastus": {
        "kind": "azure",
        "path": "",
        "models": {
            "gpt-4o": {
                "upstream_model": "prod-gpt4o",
                "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
                "context_window": 128000,
            }
        },
    },
    "groq": {
        "kind": "groq",
        "path": "/openai/v1",
        "models": {
            "llama-3.1-8b-instant": {
                "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.08},
                "context_window": 131072,
                "capabilities": ["tools", "streaming", "json_schema"],
            }
        },
    },
    "gemini": {"kind": "gemini", "path": "/v1beta/openai", "models": {"gemini-2.5-flash": {}}},
    "anthropic": {"kind": "anthropic", "path": "", "limits": {"rpm": 4000}, "models": {"claude-sonnet-5-5": {}}},
    "local-vllm": {
        "kind": "openai-compatible",
        "path": "/v1",
        "models": {
            "llama-3.1-70b": {
                "upstream_model": "meta-llama/Llama-3.1-70B-Instruct",
                "context_window": 131072,
                "capabilities": ["tools", "streaming"],
                "price": {"input_per_mtok": 0, "output_per_mtok": 0},
            }
        },
    },
}
# The demo keys' own quotas, so answers carry x-ratelimit-* headers as a real deployment's would.
DEMO_KEY_LIMITS = {"rpm": 600, "tpm": 1000000}


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def example_policy_dir() -> str:
    """The shipped example policy (``policies/`` beside the ``gateway`` package), or "" when the package
    was installed without its source tree."""
    directory = Path(__file__).resolve().parents[2] / "policies"
    return str(directory) if (directory / "platform.yaml").is_file() else ""


def demo_upstream_models() -> dict[str, str]:
    """Deployment id -> the model name the fake sees for it (unique across the demo's accounts)."""
    return {
        f"{name}/{model}": spec.get("upstream_model", model)
        for name, account in DEMO_ACCOUNTS.items()
        for model, spec in account["models"].items()
    }


def _demo_providers(upstream: str) -> dict[str, Any]:
    return {
        name: {
            **{k: v for k, v in account.items() if k != "path"},
            "base_url": upstream + account["path"],
            "api_key_env": DEMO_UPSTREAM_KEY_ENV,
        }
        for name, account in DEMO_ACCOUNTS.items()
    }


def _number(text: str) -> int | str:
    """A port from the environment; anything else is left for the validator to report."""
    return int(text) if text.isdigit() else text


def default_document(env: Mapping[str, str], known_kinds: frozenset[str]) -> dict[str, Any]:
    """Pure but for locating the example policy: the config document for this environment."""
    providers: dict[str, Any] = {}
    for kind, (key_var, url_var, models) in REAL_PROVIDERS.items():
        if env.get(key_var) and kind in known_kinds:
            providers[kind] = {"kind": kind, "api_key_env": key_var, "models": models}
            if env.get(url_var):
                providers[kind]["base_url"] = env[url_var]
    bedrock = _bedrock(env) if "bedrock" in known_kinds else None
    if bedrock is not None:
        providers["bedrock"] = bedrock
    demo = not providers
    if demo:
        providers = _demo_providers(env.get(DEMO_UPSTREAM_ENV, "http://127.0.0.1:9100"))
    keys = [
        {"name": name, "key_sha256": sha256_hex(key), "tier": tier, "models": ["*"], "limits": DEMO_KEY_LIMITS}
        for name, key, tier in (("demo", DEMO_KEY, "standard"), ("demo-premium", DEMO_PREMIUM_KEY, "premium"))
    ]
    if env.get("GATEWAY_KEY"):
        keys = [{"name": "default", "key_sha256": sha256_hex(env["GATEWAY_KEY"]), "models": ["*"]}]
    admin_key = env.get("GATEWAY_ADMIN_KEY") or (DEMO_ADMIN_KEY if demo else "")
    policy_dir = env.get(POLICY_DIR_ENV) or (example_policy_dir() if demo else "")
    return {
        "server": {
            "host": env.get("GATEWAY_HOST", "127.0.0.1"),
            "port": _number(env.get("GATEWAY_PORT", "8080")),
        },
        "state": {"redis_url": env.get("REDIS_URL", "")},
        "providers": providers,
        "keys": keys,
        "admin": {"key_sha256": sha256_hex(admin_key) if admin_key else None},
        "policies": {"dir": policy_dir},
        "demo": demo,
    }
