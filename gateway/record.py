"""What one request did: filled in as it goes (intake, routing, each attempt, the relay), then counted,
measured and logged once at its end (``api/respond.finish``). Never prompt text or secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    """What one request did; filled in as it goes, logged and measured once at the end.

    Made with what is known on arrival; every other field reads its class default (``init=False``: nothing
    stored per request) until the request path sets it.
    """

    request_id: str
    endpoint: str
    started: float
    key_name: str | None = None
    stream: bool = False
    model: str | None = field(default=None, init=False)
    deployment: str | None = field(default=None, init=False)
    rule: str | None = field(default=None, init=False)  # "route/rule" when a policy routed the request
    attempts: int = field(default=0, init=False)
    status: int = field(default=0, init=False)
    ttft_ms: float | None = field(default=None, init=False)
    prompt_tokens: int | None = field(default=None, init=False)
    completion_tokens: int | None = field(default=None, init=False)
    error_code: str | None = field(default=None, init=False)
    tried: list[str] = field(default_factory=list, init=False)
    extra_headers: dict[str, str] = field(default_factory=dict, init=False)  # e.g. the caller's x-ratelimit-*
    # As routing identifies them: the key's tier (or a trusted key's x-gateway-tier), and the end user (never
    # logged: the ledger and budgets use it).
    tier: str | None = field(default=None, init=False)
    end_user: str | None = field(default=None, init=False)
    usage: dict[str, Any] | None = field(default=None, init=False)  # the provider's usage object, priced at the end
    cost_usd: float | None = field(default=None, init=False)  # what the answer cost (gateway.spend.pricing)
    cost_estimated: bool = field(default=False, init=False)  # priced from estimated tokens: no usage reported

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
