"""The one contract every provider adapter fulfils.

An adapter is data plus pure functions: which OpenAI parameters it takes (``params``) and which
it cannot express (``unsupported``), how to build the upstream URL and auth headers, and how to
translate request, response, stream events and errors. Adapters never do I/O; ``upstream.py``
sends what they build. OpenAI-compatible providers pass bodies and stream events through as bytes
(``from_response`` and ``stream`` are None), which keeps the hot path to one JSON parse.

Adding a provider: write ``providers/<kind>.py`` exposing ``PROVIDER = Provider(...)`` and list it
in ``providers/__init__.py``; ``tests/providers/test_conformance.py`` then runs against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.config.model import Account, Deployment, LimitSettings, Secret
from gateway.errors import InvalidRequest, UpstreamStatus

Endpoint = Literal["chat", "embeddings"]


class UnsupportedParameter(InvalidRequest):
    """The deployment's provider cannot express this parameter; it is never silently dropped."""

    code = "unsupported_parameter"

    def __init__(self, param: str, kind: str) -> None:
        super().__init__(f"parameter {param!r} is not supported by provider kind {kind!r}", param=param)


@dataclass(frozen=True)
class Param:
    """How one OpenAI parameter reaches the provider: renamed, and optionally only some values."""

    target: str | None = None  # upstream name; None keeps the OpenAI name
    allowed: Callable[[Any], bool] | None = None  # values outside this are unsupported


class ErrorReader(Protocol):
    """An error answer (status, at most the first 64 KB of its body, headers) -> UpstreamStatus, its text
    redacted of ``secrets`` and its Retry-After finite, non-negative and at most ``max_retry_after``."""

    def __call__(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[str] = (),
        max_retry_after: float = LimitSettings.max_retry_after_seconds,
    ) -> UpstreamStatus: ...


class StreamTranslator(Protocol):
    """Per request: one upstream SSE event's data in, zero or more OpenAI chunk payloads out."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


@dataclass(frozen=True)
class Provider:
    kind: str
    default_base_url: str | None
    auth: Callable[[Secret | None], dict[str, str]]
    url: Callable[[Account, Deployment, Endpoint], str]
    chat_params: Mapping[str, Param]
    embedding_params: Mapping[str, Param]
    unsupported: frozenset[str]
    from_error: ErrorReader
    to_request: Callable[[dict[str, Any], Deployment, Provider, Endpoint], dict[str, Any]]
    # None: the provider already answers in OpenAI's format and bytes pass through untouched.
    from_response: Callable[[bytes, Deployment], bytes] | None = None
    stream: Callable[[Deployment], StreamTranslator] | None = None
    # Unknown fields (provider extensions such as vLLM's top_k) are forwarded rather than refused.
    passthrough_unknown: bool = False
    # The provider honours stream_options.include_usage, so usage can always be asked for.
    stream_usage: bool = True
    needs_credential: bool = True
    needs_api_version: bool = False
    default_api_version: str | None = None
    endpoints: frozenset[Endpoint] = field(default_factory=lambda: frozenset({"chat", "embeddings"}))

    def params(self, endpoint: Endpoint) -> Mapping[str, Param]:
        return self.chat_params if endpoint == "chat" else self.embedding_params
