"""Explain a routing decision without sending anything: the features, the rule, the plan, the exclusions.

Used by ``POST /admin/explain`` (with the live health snapshot) and ``gateway explain`` (with an empty,
all-healthy snapshot). Pure: the same inputs give the same answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any

from gateway.api.intake import check_chat, check_embeddings
from gateway.config.model import Deployment, Mode, VirtualKey
from gateway.errors import GatewayError
from gateway.providers.base import Endpoint
from gateway.routing.features import features_from, refine
from gateway.routing.policy import Policy
from gateway.routing.resolve import ModelIndex, candidates, direct_plan, empty_plan_error
from gateway.routing.select import plan
from gateway.routing.snapshot import Snapshot

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
    seed: str = "explain",
) -> dict[str, Any]:
    """>>> explain(policy, deployments, index, Snapshot(), {"model": "agent-default", "messages": [...]})["rule"]
    'agent-default/standard'
    """
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        check_chat(request) if endpoint == "chat" else check_embeddings(request)
        features = features_from(request, key, lowered, endpoint, trusted=True)
        features = refine(features, policy.thresholds(features.model))
        found = plan(policy, features, snapshot, random.Random(seed), deployments)
        if found is None:
            mode: Mode = "chat" if endpoint == "chat" else "embedding"
            found = direct_plan(candidates(index, key, features.model, mode), policy, snapshot, features.model)
        error = empty_plan_error(found) if not found.entries else None
    except GatewayError as e:
        return {"policy_version": policy.version, "error": {"status": e.status, "code": e.code, "message": e.message}}
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
