"""The routing decision, in one place: the plan a request gets (pure).

Serving (``api/proxy``) and explaining (``explain``, the admin API and ``gateway explain``) call the same
``decide``, so an explanation cannot drift from what serving does:

- a route or an alias: the policy's plan (``select.plan``);
- any other model name or ``account/model`` id: its deployments in config order (``resolve.direct_plan``),
  once the key's allowance and the endpoint are checked (404, 403 and 400 raise as ``GatewayError``).

An empty plan is returned as it is; ``resolve.empty_plan_error`` is what a client is told about it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from gateway.config.model import Deployment, VirtualKey
from gateway.routing.features import Features
from gateway.routing.policy import Policy
from gateway.routing.resolve import ModelIndex, candidates, direct_plan
from gateway.routing.select import Plan, plan
from gateway.routing.snapshot import Snapshot
from gateway.types import mode_of


def decide(
    policy: Policy,
    features: Features,
    snapshot: Snapshot,
    rng: random.Random,
    deployments: Mapping[str, Deployment],
    index: ModelIndex,
    key: VirtualKey,
) -> Plan:
    routed = plan(policy, features, snapshot, rng, deployments)
    if routed is not None:
        return routed
    found = candidates(index, key, features.model, mode_of(features.endpoint))
    return direct_plan(found, policy, snapshot, features.model)
