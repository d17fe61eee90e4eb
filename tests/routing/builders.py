"""Deployments and request features for routing tests, built with only what a test changes."""

from __future__ import annotations

from typing import Any

from gateway.config.model import Deployment, Limits, Price
from gateway.routing.features import Features


def dep(
    account: str,
    model: str,
    window: int | None = None,
    *,
    mode: str = "chat",
    price: Price | None = None,
    max_out: int | None = None,
    capabilities: frozenset[str] = frozenset({"streaming"}),
) -> Deployment:
    return Deployment(
        account=account,
        model=model,
        upstream_model=model,
        mode=mode,  # type: ignore[arg-type]
        limits=Limits(),
        price=price,
        context_window=window,
        max_output_tokens=max_out,
        capabilities=capabilities,
    )


def feats(**changes: Any) -> Features:
    base: dict[str, Any] = {
        "model": "r",
        "endpoint": "chat",
        "key_name": "team-a",
        "tier": "standard",
        "end_user": None,
        "task": None,
        "tags": frozenset(),
        "prompt_tokens": 1000,
        "prompt_exact": False,
        "max_tokens": None,
        "capabilities": frozenset(),
        "stream": False,
        "allowed": frozenset({"*"}),
    }
    base.update(changes)
    # What the answers may take: the cap when the request set one, else limits.default_output_tokens.
    base.setdefault("output_tokens", base["max_tokens"] or 1024)
    return Features(**base)
