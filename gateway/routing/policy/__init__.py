"""Routing policies: admin-edited YAML (``policies/*.yaml``) as one frozen ``Policy``.

``model`` holds a loaded policy, ``conditions`` is a rule's ``match``, ``retry`` its fallback
triggers, ``document`` the safe YAML reading with line numbers; ``gateway.routing.policy_load``
reads and checks the files.
"""

from __future__ import annotations

from gateway.routing.policy.conditions import Condition, Contains, OneOf, Range
from gateway.routing.policy.model import (
    RETRY_ON_DEFAULT,
    STRATEGIES,
    TIE_BREAKERS,
    Defaults,
    Policy,
    Retries,
    Route,
    Rule,
    Strategy,
    TieBreaker,
)

__all__ = [
    "RETRY_ON_DEFAULT",
    "STRATEGIES",
    "TIE_BREAKERS",
    "Condition",
    "Contains",
    "Defaults",
    "OneOf",
    "Policy",
    "Range",
    "Retries",
    "Route",
    "Rule",
    "Strategy",
    "TieBreaker",
]
