"""Explain a routing decision without sending anything: the features, the rule, the plan, the exclusions.

Used by ``POST /admin/explain`` (with the live health snapshot) and ``gateway explain`` (with an empty,
all-healthy snapshot), on a request they have checked as serving does (``api/intake``). Pure: the same
inputs give the same answer, and the decision is serving's own (``decision.decide``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any

from gateway.config.model import DEFAULT_OUTPUT_TOKENS, Deployment, VirtualKey
from gateway.errors import GatewayError
from gateway.routing.decision import decide
from gateway.routing.features import features_from, refine
from gateway.routing.policy import Policy
from gateway.routing.resolve import ModelIndex, empty_plan_error
from gateway.routing.snapshot import Snapshot
from gateway.types import Endpoint


def refusal(policy: Policy, error: GatewayError) -> dict[str, Any]:
    """What explain says of a request serving would refuse before any plan (a malformed body, a model that
    does not exist or that the key may not use)."""
    return {
        "policy_version": policy.version,
        "error": {"status": error.status, "code": error.code, "message": error.message},
    }


ADMIN_VIEW = VirtualKey(name="(explain)", key_sha256="0" * 64, tier="standard", models=frozenset({"*"}))


def explain(
    policy: Policy,
    deployments: Mapping[str, Deployment],
    index: ModelIndex,
    snapshot: Snapshot,
    request: dict[str, Any],
    key: VirtualKey = ADMIN_VIEW,
    headers: Mapping[str, str] | None = None,
    endpoint: Endpoint = "chat",
    default_output: int = DEFAULT_OUTPUT_TOKENS,
    seed: str = "explain",
    budget_used: float = 0.0,
) -> dict[str, Any]:
    """With policies/platform.yaml, ``explain(...)["rule"]`` for a standard-tier request to ``agent-default``
    is ``"agent-default/standard"``; tests/routing/test_decision.py shows the whole answer. Headers are
    trusted (an admin may act as any tier or end user)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        features = features_from(request, key, lowered, endpoint, True, default_output, budget_used)
        features = refine(features, policy.thresholds(features.model))
        found = decide(policy, features, snapshot, random.Random(seed), deployments, index, key)
        error = empty_plan_error(found) if not found.entries else None
    except GatewayError as e:
        return refusal(policy, e)
    shown = asdict(replace(features, body={}))
    shown.pop("body", None)
    return {
        "policy_version": policy.version,
        "features": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in shown.items()},
        "rule": f"{found.route}/{found.rule}" if found.rule else None,
        "plan": found.to_json(),
        "outcome": (
            {"status": error.status, "code": error.code, "message": error.message}
            if error is not None
            else {"status": 200, "first_choice": found.entries[0].deployment}
        ),
    }
