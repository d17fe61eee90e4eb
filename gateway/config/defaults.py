"""The configuration used when none is given: real providers if their keys are set, else the demo.

The demo routes to the built-in fake providers (``gateway fake-upstream``), which the CLI starts
on a free loopback port and announces through ``GATEWAY_DEMO_UPSTREAM``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

DEMO_KEY = "demo-key"
DEMO_ADMIN_KEY = "demo-admin-key"
DEMO_UPSTREAM_KEY = "demo-upstream-key"
DEMO_UPSTREAM_ENV = "GATEWAY_DEMO_UPSTREAM"
DEMO_UPSTREAM_KEY_ENV = "GATEWAY_DEMO_UPSTREAM_KEY"

# Provider kind -> (env var holding its key, models it serves by default).
REAL_PROVIDERS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "openai": ("OPENAI_API_KEY", {"gpt-4o-mini": {}, "gpt-4o": {}, "text-embedding-3-small": {}}),
    "anthropic": ("ANTHROPIC_API_KEY", {"claude-sonnet-4-5": {}, "claude-haiku-4-5": {}}),
    "groq": ("GROQ_API_KEY", {"llama-3.1-8b-instant": {}, "llama-3.3-70b-versatile": {}}),
    "gemini": ("GEMINI_API_KEY", {"gemini-2.5-flash": {}, "gemini-2.5-pro": {}}),
}


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def default_document(env: Mapping[str, str], known_kinds: frozenset[str]) -> dict[str, Any]:
    """Pure: the config document for this environment, before validation."""
    providers: dict[str, Any] = {}
    for kind, (var, models) in REAL_PROVIDERS.items():
        if env.get(var) and kind in known_kinds:
            providers[kind] = {"kind": kind, "api_key_env": var, "models": models}
    demo = not providers
    if demo:
        upstream = env.get(DEMO_UPSTREAM_ENV, "http://127.0.0.1:9100")
        providers = {
            "demo-openai": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "api_key_env": DEMO_UPSTREAM_KEY_ENV,
                "models": {"gpt-4o-mini": {}, "gpt-4o": {}, "text-embedding-3-small": {}},
            },
            "demo-groq": {
                "kind": "groq",
                "base_url": f"{upstream}/openai/v1",
                "api_key_env": DEMO_UPSTREAM_KEY_ENV,
                "models": {"llama-3.1-8b-instant": {}, "gpt-4o-mini": {"upstream_model": "gpt-4o-mini"}},
            },
        }
    keys = [{"name": "demo", "key_sha256": sha256_hex(DEMO_KEY), "tier": "standard", "models": ["*"]}]
    if env.get("GATEWAY_KEY"):
        keys = [{"name": "default", "key_sha256": sha256_hex(env["GATEWAY_KEY"]), "models": ["*"]}]
    admin_key = env.get("GATEWAY_ADMIN_KEY") or (DEMO_ADMIN_KEY if demo else "")
    return {
        "server": {
            "host": env.get("GATEWAY_HOST", "127.0.0.1"),
            "port": int(env.get("GATEWAY_PORT", "8080")),
        },
        "state": {"redis_url": env.get("REDIS_URL", "")},
        "providers": providers,
        "keys": keys,
        "admin": {"key_sha256": sha256_hex(admin_key) if admin_key else None},
        "demo": demo,
    }
