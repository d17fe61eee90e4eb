"""The one contract every provider adapter fulfils: the whole wire format, and nothing else.

An adapter is data plus pure functions. For the request: which OpenAI parameters it takes (``params``)
and which it cannot express (``unsupported``), the body (``to_request``), the URL, the credential's
headers (``auth``, computed once per account) and, where a provider signs every request (AWS SigV4),
``signer``: built once per account when the gateway starts (credentials resolved then), it signs each
request; other providers never pay for it. A provider reached through a library rather than HTTP the
gateway speaks (the litellm kind) has ``sdk`` instead: built once per account, one call per try.

For the answer: the JSON body (``from_response``), the usage in it (``usage``), the stream's framing
(``decoder``: SSE, or a binary event stream), its events (``stream``: one translator per request,
upstream events in, OpenAI chunk payloads out, ``[DONE]`` at the end) and an error event arriving where
an answer should (``stream_error``). For failures: the error answer (``from_error``) and
the provider's own remaining-capacity headers (``rate_limits``). Adapters never do I/O; ``upstream.py``
sends what they build, and the API layer relays what they translate.

OpenAI-compatible providers pass bodies and stream events through as bytes (``from_response`` and
``stream`` are None), which keeps the hot path to one JSON parse.

Adding a provider: write ``providers/<kind>.py`` (a package once it outgrows ~400 lines, as ``anthropic``
and ``bedrock`` did) exposing ``PROVIDER = Provider(...)`` and list it in ``providers/__init__.py``;
``tests/providers/test_conformance.py`` then runs against it, and ``tests/providers/toy.py`` shows a
provider that translates everything.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from gateway.config.model import MAX_RETRY_AFTER_SECONDS, Account, Deployment, Secret
from gateway.errors import InvalidRequest, UpstreamError, UpstreamStatus
from gateway.sse import SSEDecoder
from gateway.types import Endpoint, Usage


class UnsupportedParameter(InvalidRequest):
    """The deployment's provider cannot express this parameter; it is never silently dropped."""

    code = "unsupported_parameter"

    def __init__(self, param: str, kind: str) -> None:
        super().__init__(f"parameter {param!r} is not supported by provider kind {kind!r}", param=param)


class UnsupportedValue(UnsupportedParameter):
    """The parameter is supported, this value of it is not (an audio part, a json_object response format...)."""

    def __init__(self, param: str, kind: str, what: str) -> None:
        InvalidRequest.__init__(self, f"{what} is not supported by provider kind {kind!r}", param=param)


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
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
    ) -> UpstreamStatus: ...


class StreamTranslator(Protocol):
    """Per request: one upstream event in, zero or more OpenAI chunk payloads out (``b"[DONE]"`` last, once
    the provider said the answer is complete). An error event raises the ``UpstreamError`` it reports."""

    def feed(self, event: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]:
        """At the end of the upstream stream: whatever is still owed (nothing, for a complete stream)."""
        ...


class Decoder(Protocol):
    """A stream's framing: upstream bytes in arbitrary pieces -> complete events (``sse.SSEDecoder``)."""

    def feed(self, chunk: bytes) -> list[bytes]: ...

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet complete (non-empty at the end of a stream means it was cut)."""
        ...


class Signer(Protocol):
    """Headers that sign one request (method POST, ``url``, ``headers`` so far, ``body``) for the account the
    signer was built for (``Provider.signer``)."""

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]: ...


@dataclass
class SdkAnswer:
    """What a provider reached through a library answers, already in OpenAI's format: a JSON body, or a
    stream of chunk payloads (``b"[DONE]"`` last) that ``aclose`` cancels. ``headers`` are the provider's."""

    headers: Mapping[str, str]
    body: bytes | None = None
    events: AsyncGenerator[bytes, None] | None = None


class SdkCall(Protocol):
    """One try through a library (``Provider.sdk``): the translated request (``Provider.to_request``'s JSON)
    in, the answer out once its first byte is known; failures raise ``UpstreamError``s, as HTTP ones do."""

    async def __call__(self, body: bytes, timeout: float) -> SdkAnswer: ...


def sse(max_event: int) -> Decoder:
    return SSEDecoder(max_event)


def openai_usage(body: bytes) -> Usage | None:
    """The usage of an OpenAI-shaped answer (what every adapter's ``from_response`` produces)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_in(parsed.get("usage") if isinstance(parsed, dict) else None)


def usage_in(value: Any) -> Usage | None:
    """>>> usage_in({"prompt_tokens": 5, "completion_tokens": 2}), usage_in(None)
    (Usage(prompt=5, completion=2), None)
    """
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if not isinstance(prompt, int):
        return None
    return Usage(prompt, completion if isinstance(completion, int) else 0)


# A request, or OpenAI-compatible parameters, may say "nothing" explicitly: null, or a parameter's own
# default. Such a value asks a provider for nothing, so a kind that lacks the feature need not refuse it
# (the Agents SDK sends store=false to every provider); it is left out of the upstream body.
NO_OP_VALUES: Mapping[str, tuple[Any, ...]] = {
    "logprobs": (False,),
    "n": (1,),
    "store": (False,),
    "parallel_tool_calls": (True,),
    "logit_bias": ({},),
    "stop": ([],),
    "metadata": ({},),
    "temperature": (1, 1.0),
    "top_p": (1, 1.0),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "response_format": ({"type": "text"},),
}


# Parameters that only label a request and never change its answer. ``metadata`` is where clients tag a
# request for routing (``metadata.task``, ``metadata.tags``) and logs; a provider that cannot store it is
# asked for nothing by it, so it is left out there rather than refused (which would break the policy that
# reads it on half the fleet).
LABELS = frozenset({"metadata"})


def errors_in_translation(event: bytes) -> UpstreamError | None:
    """``stream_error`` for a kind whose stream translator raises the provider's error events itself."""
    return None


def asks_nothing(name: str, value: Any) -> bool:
    """>>> asks_nothing("store", False), asks_nothing("n", None), asks_nothing("n", 2)
    (True, True, False)
    >>> asks_nothing("metadata", {"task": "classify"})
    True
    """
    if value is None or (name in LABELS and isinstance(value, dict)):
        return True
    return any(value == v and type(value) is type(v) for v in NO_OP_VALUES.get(name, ()))


@dataclass(frozen=True)
class Provider:
    kind: str
    default_base_url: str | None  # None: every account names one; "": none needed (a library knows where)
    auth: Callable[[Secret | None], dict[str, str]]
    url: Callable[[Account, Deployment, Endpoint], str]
    chat_params: Mapping[str, Param]
    embedding_params: Mapping[str, Param]
    unsupported: frozenset[str]
    from_error: ErrorReader
    to_request: Callable[[dict[str, Any], Deployment, Provider, Endpoint], dict[str, Any]]
    # The provider's own remaining capacity, from its answer's headers: {"requests": n, "tokens": n}.
    rate_limits: Callable[[Mapping[str, str]], Mapping[str, float]]
    # An event that is an error where an answer should be (OpenAI-style streams); None: an answer.
    stream_error: Callable[[bytes], UpstreamError | None]
    # None: the provider already answers in OpenAI's format and bytes pass through untouched.
    from_response: Callable[[bytes, Deployment], bytes] | None = None
    stream: Callable[[Deployment], StreamTranslator] | None = None
    usage: Callable[[bytes], Usage | None] = openai_usage  # of the (translated) JSON answer
    decoder: Callable[[int], Decoder] = sse  # the stream's framing, given the largest event allowed
    stream_type: str = "text/event-stream"  # the content type a stream answer must have
    # Where a stream is asked for, when that is another address (Bedrock's converse-stream); None: ``url``.
    stream_url: Callable[[Account, Deployment], str] | None = None
    # Per account, at start: signs every request (AWS SigV4); None: the static ``auth`` headers are enough.
    signer: Callable[[Account], Signer | None] | None = None
    # Per account, at start: the library call that replaces HTTP for this kind (litellm); None: HTTP.
    sdk: Callable[[Account], SdkCall] | None = None
    # Unknown fields (provider extensions such as vLLM's top_k) are forwarded rather than refused.
    passthrough_unknown: bool = False
    # The provider honours stream_options.include_usage, so usage can always be asked for.
    stream_usage: bool = True
    needs_credential: bool = True
    aws: bool = False  # an AWS service: a region and AWS credentials per account (``Account.region``, ``aws``)
    needs_api_version: bool = False
    default_api_version: str | None = None
    endpoints: frozenset[Endpoint] = field(default_factory=lambda: frozenset({"chat", "embeddings"}))

    def params(self, endpoint: Endpoint) -> Mapping[str, Param]:
        return self.chat_params if endpoint == "chat" else self.embedding_params
