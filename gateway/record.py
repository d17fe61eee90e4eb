"""What one request did: filled in as it goes (intake, routing, each attempt, the relay), then counted,
measured and logged once at its end (``api/respond.finish``). Never prompt text or secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    """What one request did; filled in as it goes, logged and measured once at the end."""

    request_id: str
    endpoint: str
    started: float
    key_name: str | None = None
    model: str | None = None
    deployment: str | None = None
    rule: str | None = None  # "route/rule" when a policy routed the request
    attempts: int = 0
    stream: bool = False
    status: int = 0
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_code: str | None = None
    tried: list[str] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)  # e.g. the caller's x-ratelimit-*
    tier: str | None = None  # as routing identifies it: the key's, or a trusted key's x-gateway-tier
    end_user: str | None = None  # as routing identifies it (never logged: the ledger and budgets use it)
    usage: dict[str, Any] | None = None  # the provider's usage object (OpenAI's shape), priced at the end
    cost_usd: float | None = None  # what the answer cost (gateway.spend.pricing)
    cost_estimated: bool = False  # priced from estimated tokens: the provider reported no usage

    def as_log(self, latency_ms: float) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "key": self.key_name,
            "model": self.model,
            "rule": self.rule,
            "deployment": self.deployment,
            "attempts": self.attempts,
            "tried": self.tried,
            "stream": self.stream,
            "status": self.status,
            "latency_ms": round(latency_ms, 2),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 2),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error_code,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "cost_estimated": self.cost_estimated,
        }
