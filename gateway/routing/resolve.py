"""Model name -> the deployments that may serve it, for this key (pure).

Until routing policies arrive a client addresses a deployment by its model name (every account
serving it, in config order, so a failing one falls back to the next) or by ``account/model``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.model import Deployment, Settings, VirtualKey
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, PermissionDenied
from gateway.routing.policy import Policy
from gateway.routing.select import Excluded, Plan, PlanEntry, last_resort
from gateway.routing.snapshot import Snapshot
from gateway.types import Mode


@dataclass(frozen=True)
class ModelIndex:
    by_model: dict[str, tuple[Deployment, ...]]
    by_id: dict[str, Deployment]

    @classmethod
    def build(cls, settings: Settings) -> ModelIndex:
        by_model: dict[str, list[Deployment]] = {}
        for d in settings.deployments:
            by_model.setdefault(d.model, []).append(d)
        return cls({m: tuple(ds) for m, ds in by_model.items()}, {d.id: d for d in settings.deployments})

    def visible(self, key: VirtualKey, mode: Mode | None = None) -> list[str]:
        """Model names this key may use, in config order (for /v1/models)."""
        return [
            m
            for m, ds in self.by_model.items()
            if any(_allowed(key, d) and (mode is None or d.mode == mode) for d in ds)
        ]


def _allowed(key: VirtualKey, d: Deployment) -> bool:
    return key.allows(d.model) or key.allows(d.id)


def candidates(index: ModelIndex, key: VirtualKey, model: str, mode: Mode) -> tuple[Deployment, ...]:
    """The ordered deployments to try; raises 404 unknown, 403 not allowed, 400 wrong endpoint.

    ``gpt-4o-mini`` served by accounts ``openai-a`` and ``openai-b`` gives both deployments, in config
    order; ``openai-b/gpt-4o-mini`` gives that one deployment.
    """
    found = index.by_model.get(model)
    if found is None:
        single = index.by_id.get(model)
        if single is None:
            raise ModelNotFound(f"the model {model!r} does not exist or is not served here", param="model")
        found = (single,)
    allowed = tuple(d for d in found if _allowed(key, d))
    if not allowed:
        raise PermissionDenied(f"this key may not use the model {model!r}", param="model")
    usable = tuple(d for d in allowed if d.mode == mode)
    if not usable:
        endpoint = "/v1/embeddings" if allowed[0].mode == "embedding" else "/v1/chat/completions"
        raise InvalidRequest(f"the model {model!r} is served at {endpoint}", param="model", code="wrong_endpoint")
    return usable


def direct_plan(found: tuple[Deployment, ...], policy: Policy, snapshot: Snapshot, model: str) -> Plan:
    """A plan for a model name that is not a route: its deployments in config order, open circuits left
    out (all open: the least bad as a last resort), the policy's default fallback triggers and retries."""
    entries: list[PlanEntry] = []
    excluded: list[Excluded] = []
    for n, d in enumerate(found):
        state = snapshot.state(d.id)
        if state.circuit == "open":
            excluded.append(Excluded(d.id, f"circuit open, retry in {state.retry_in:.1f}s", "circuit_open"))
        else:
            entries.append(
                PlanEntry(
                    d.id,
                    None,
                    "serves {!r} (#{} in config order)",
                    "candidate",
                    state.circuit == "half_open",
                    why_args=(model, n + 1),
                )
            )
    if not entries and (spare := last_resort(excluded, snapshot)) is not None:
        entries.append(spare)
    return Plan(
        route=model,
        rule=None,
        strategy="priority",
        entries=tuple(entries),
        excluded=tuple(excluded),
        retry_on=policy.defaults.retry_on,
        retries=policy.defaults.retries,
        admit_strategy="first",
        policy_version=policy.version,
        reason=None if entries else f"no deployment serves {model!r}",
        direct=True,
    )


def empty_plan_error(plan: Plan) -> GatewayError:
    """Why nothing can serve the request, as the error the client should see (pure)."""
    if plan.rule is None and not plan.excluded:
        return InvalidRequest(plan.reason or "no routing rule matches this request", code="no_matching_rule")
    kinds = {x.kind for x in plan.excluded}  # never only open circuits: the least bad is planned
    details = "; ".join(f"{x.deployment}: {x.reason}" for x in plan.excluded)
    if kinds == {"not_allowed"}:
        return PermissionDenied(f"this key may not use any deployment of {plan.route!r}", param="model")
    if "context_window" in kinds:
        return InvalidRequest(
            f"the request is too long for every deployment ({details})",
            param="messages",
            code="context_length_exceeded",
        )
    if "capabilities" in kinds:
        return InvalidRequest(
            f"no deployment supports what this request needs ({details})", code="unsupported_capability"
        )
    if "cost" in kinds:
        return InvalidRequest(f"every deployment exceeds the cost ceiling ({details})", code="cost_limit_exceeded")
    return InvalidRequest(f"no deployment can serve this request ({details})", code="no_deployment")
