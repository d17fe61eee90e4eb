"""Settings of the fake upstream: how it behaves per model, and what is fixed for one fake.

Behaviour is layered: the default (model ``*``) applies to every model, and a per-model override
replaces only the fields it names, so changing the default later still reaches overridden models::

    behaviours = Behaviours(Behaviour(latency_ms=20))
    behaviours.update("gpt-4o", {"failure_rate": 1.0})
    behaviours.for_model("gpt-4o")   # Behaviour(latency_ms=20, failure_rate=1.0, ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "*"

# 500/503/429/context_length answer an OpenAI error; insufficient_quota is the 429 OpenAI sends when
# the account's credit is spent (it names no wait); reset aborts the TCP connection; stall sends
# headers and then nothing; cut sends about half the response and closes; timeout never answers;
# stream_error answers a stream 200 and then, as its first event, an error object in OpenAI's shape
# and ends without [DONE] (a request that does not stream gets the same error as a 500);
# mid_stream_error sends about half the stream, then that error event; 529 is "overloaded" (Anthropic's
# 529 overloaded_error, Bedrock's 503 ServiceUnavailableException, on OpenAI paths the 503). On the
# Anthropic and Bedrock paths every kind answers in that provider's own format.
FAILURE_KINDS = (
    "500",
    "503",
    "429",
    "insufficient_quota",
    "reset",
    "stall",
    "cut",
    "context_length",
    "timeout",
    "stream_error",
    "mid_stream_error",
    "529",
)


class BehaviourError(ValueError):
    """A behaviour update names an unknown field or gives a value of the wrong type or range."""


@dataclass(frozen=True)
class Behaviour:
    latency_ms: float = 0.0  # before the response headers (after auth, validation and limits)
    ttft_ms: float = 0.0  # streams: after the headers, before the first chunk
    tokens_per_second: float = 0.0  # stream pacing; 0 sends every chunk at once
    failure_rate: float = 0.0  # share of requests that fail with failure_kind (seeded RNG)
    failure_kind: str = "500"
    retry_after_ms: int = 1000  # what an injected 429 asks the client to wait
    default_completion_tokens: int = 16  # when the request sets neither max_tokens nor max_completion_tokens
    context_window: int | None = None  # prompt + max tokens above this answers context_length_exceeded
    cached_tokens: int = 0  # prompt tokens reported as read from the provider's prompt cache (at most the prompt)

    def __post_init__(self) -> None:
        _check(self)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(Behaviour)}


def _check(b: Behaviour) -> None:
    for name in ("latency_ms", "ttft_ms", "tokens_per_second"):
        value = getattr(b, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise BehaviourError(f"{name} must be a number >= 0, got {value!r}")
    rate = b.failure_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise BehaviourError(f"failure_rate must be a number between 0 and 1, got {rate!r}")
    if b.failure_kind not in FAILURE_KINDS:
        raise BehaviourError(f"failure_kind must be one of {', '.join(FAILURE_KINDS)}, got {b.failure_kind!r}")
    for name in ("retry_after_ms", "default_completion_tokens", "cached_tokens"):
        value = getattr(b, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BehaviourError(f"{name} must be an integer >= 0, got {value!r}")
    window = b.context_window
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise BehaviourError(f"context_window must be a positive integer or null, got {window!r}")


def check_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Reject unknown fields and bad values; return the fields as a plain dict (failure_kind as str)."""
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise BehaviourError(f"unknown behaviour field(s): {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    clean = dict(fields)
    if isinstance(clean.get("failure_kind"), int) and not isinstance(clean["failure_kind"], bool):
        clean["failure_kind"] = str(clean["failure_kind"])  # 429 and "429" mean the same thing
    dataclasses.replace(Behaviour(), **clean)  # validates the values
    return clean


@dataclass
class Behaviours:
    """The start-up default plus run-time overrides, per model; ``reset`` goes back to start-up."""

    initial: Behaviour = field(default_factory=Behaviour)
    default: Behaviour = field(init=False)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.default = self.initial

    def update(self, model: str, fields: Mapping[str, Any]) -> None:
        clean = check_fields(fields)
        if model == DEFAULT_MODEL:
            self.default = dataclasses.replace(self.default, **clean)
            return
        merged = {**self.overrides.get(model, {}), **clean}
        dataclasses.replace(self.default, **merged)  # the combination must be valid too
        self.overrides[model] = merged

    def for_model(self, model: str) -> Behaviour:
        override = self.overrides.get(model)
        return dataclasses.replace(self.default, **override) if override else self.default

    def reset(self) -> None:
        self.default = self.initial
        self.overrides.clear()

    def to_json(self) -> dict[str, Any]:
        out = {DEFAULT_MODEL: self.default.to_json()}
        out.update({model: self.for_model(model).to_json() for model in sorted(self.overrides)})
        return out


@dataclass(frozen=True)
class FakeSettings:
    """What is fixed for the life of one fake (limits can still be changed through /_fake/limits)."""

    host: str = "127.0.0.1"
    port: int = 9100
    api_key: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    seed: int = 0
    behaviour: Behaviour = field(default_factory=Behaviour)
    models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "text-embedding-3-large")
