"""Configs for the spend end-to-end tests: one provider account on a fake, priced models, keys with budgets."""

from __future__ import annotations

from typing import Any

import yaml
from harness import ADMIN_KEY

from gateway.auth import digest

M = 1e-6  # USD per token, per USD per million tokens
# Models on the fake, priced so that costs are easy to compute by hand: input is free for "flat", so a
# request with max_tokens N costs exactly N x 0.001 USD (the fake answers with exactly max_tokens tokens).
MODELS: dict[str, Any] = {
    "flat": {"upstream_model": "gpt-4o-mini", "price": {"input_per_mtok": 0, "output_per_mtok": 1000}},
    "premium": {"upstream_model": "gpt-4o", "price": {"input_per_mtok": 10, "output_per_mtok": 400}},
    "cheap": {"upstream_model": "gpt-4o-mini", "price": {"input_per_mtok": 1, "output_per_mtok": 4}},
    "cached": {
        "upstream_model": "gpt-4o-mini",
        "price": {"input_per_mtok": 2.5, "output_per_mtok": 10, "cache_read_per_mtok": 1.25},
    },
    "embed": {"upstream_model": "text-embedding-3-small", "mode": "embedding", "price": {"input_per_mtok": 20}},
}


def key(name: str, secret: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "key_sha256": digest(secret), "models": ["*"], **fields}


def config(
    port: int,
    fake_url: str,
    *,
    keys: list[dict[str, Any]],
    redis_url: str = "",
    prefix: str = "llmgw",
    tiers: dict[str, Any] | None = None,
    policy_dir: str = "",
    **top: Any,
) -> str:
    doc: dict[str, Any] = {
        "server": {
            "port": port,
            "timeouts": {"connect": 1, "first_byte": 10, "total": 30, "stream_idle": 5},
            "shutdown_grace_seconds": 3,
            "drain_delay_seconds": 0,
        },
        "state": {"redis_url": redis_url},
        "limits": {"key_prefix": prefix, "queue_timeout_seconds": 0},
        "providers": {
            "acct": {
                "kind": "openai",
                "base_url": f"{fake_url}/v1",
                "api_key_env": "FAKE_UPSTREAM_KEY",
                "models": MODELS,
            }
        },
        "keys": keys,
        "admin": {"key_sha256": digest(ADMIN_KEY)},
        "policies": {"dir": policy_dir},
        **top,
    }
    if tiers:
        doc["budgets"] = {"tiers": tiers}
    return yaml.safe_dump(doc, sort_keys=False)
