"""Model name -> the deployments that may serve it, for this key (pure).

Until routing policies arrive a client addresses a deployment by its model name (every account
serving it, in config order, so a failing one falls back to the next) or by ``account/model``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.model import Deployment, Mode, Settings, VirtualKey
from gateway.errors import InvalidRequest, ModelNotFound, PermissionDenied


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

    >>> candidates(index, key, "gpt-4o-mini", "chat")   # two accounts serve it
    (Deployment(id='openai-a/gpt-4o-mini'), Deployment(id='openai-b/gpt-4o-mini'))
    >>> candidates(index, key, "openai-b/gpt-4o-mini", "chat")
    (Deployment(id='openai-b/gpt-4o-mini'),)
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
