"""The long tail (``kind: litellm``): any provider litellm supports (Cohere, Mistral, Vertex, Together...)
through ``litellm.acompletion`` and ``litellm.aembedding``, under the same contracts as the native adapters.

This is the only module that imports litellm, and only in ``sdk``: when the gateway starts with a
``kind: litellm`` account (importing it takes seconds and ~150 MB; no other configuration ever loads it).
litellm is told to use the cost map it ships (``LITELLM_LOCAL_MODEL_COST_MAP``), never the network's.

- **Request**: the OpenAI body, with the deployment's ``upstream_model`` in litellm's naming
  (``cohere/command-r-08-2024``, ``mistral/mistral-large-latest``); usage is always asked for on streams.
  Which parameters a provider takes is litellm's to say (``drop_params`` stays off): one it cannot send
  is a 400 naming it, never dropped. The account's key and ``base_url`` (optional) go to litellm as
  ``api_key`` / ``api_base``; litellm's own retries are off (the gateway retries and falls back).
- **Answer**: litellm's OpenAI-shaped response and chunks, serialised as they come (``[DONE]`` last).
- **Failures**: litellm's exceptions become the gateway's (``failure``): its status classes (429, 5xx,
  400...) with the provider's ``retry-after``, timeouts and connection errors as such, a context-window
  error as ``context_length_exceeded``, so fallbacks, cooldowns and circuits work as for any provider.
- **Cancellation**: a client that leaves cancels the call (its task, or the stream's ``aclose``).

It costs far more CPU per request than a native adapter (README, Providers): use it for the long tail.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from gateway.config.model import Account
from gateway.errors import UpstreamConnection, UpstreamError, UpstreamStatus, UpstreamTimeout, redact
from gateway.providers import openai_compat as oc
from gateway.providers.base import Provider, SdkAnswer, SdkCall

KIND = "litellm"


def _library() -> Any:
    """litellm, imported on first use (at start, by ``sdk``), reading its own cost map rather than fetching one."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    library: Any = importlib.import_module("litellm")
    library.suppress_debug_info = True
    return library


def failure(error: BaseException, secrets: tuple[str, ...] = ()) -> UpstreamError:
    """Pure: a litellm exception -> the gateway's failure (its class decides fallback, retry and circuit)."""
    name = type(error).__name__
    message = redact(str(getattr(error, "message", None) or error)[:1000], secrets)
    if name in ("Timeout", "APITimeoutError") or isinstance(error, TimeoutError):
        return UpstreamTimeout(f"the provider did not answer in time ({message})")
    if name == "APIConnectionError":
        return UpstreamConnection(f"could not reach the provider through litellm: {message}")
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        return UpstreamConnection(f"litellm failed: {name}: {message}")
    code = "context_length_exceeded" if name == "ContextWindowExceededError" else name
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or getattr(error, "headers", None) or {}
    wait = oc.retry_after({k.lower(): str(v) for k, v in dict(headers).items()}, 300.0)
    return UpstreamStatus(status, message, code=code, retry_after=wait)


def _headers(result: Any) -> Mapping[str, str]:
    hidden = getattr(result, "_hidden_params", None) or {}
    found = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    return {str(k).lower(): str(v) for k, v in (found or {}).items()}


def sdk(account: Account) -> SdkCall:
    """One account's call: litellm loaded now, its key and base URL bound."""
    library = _library()
    secrets = (account.api_key.reveal(),) if account.api_key is not None else ()
    fixed: dict[str, Any] = {"num_retries": 0, "drop_params": False}
    if account.api_key is not None:
        fixed["api_key"] = account.api_key.reveal()
    if account.base_url:
        fixed["api_base"] = account.base_url

    async def call(body: bytes, timeout: float) -> SdkAnswer:
        request = {**orjson.loads(body), **fixed, "timeout": timeout}
        embedding = "input" in request and "messages" not in request
        try:
            result = await (library.aembedding(**request) if embedding else library.acompletion(**request))
        except Exception as e:
            raise failure(e, secrets) from None
        if request.get("stream"):
            return SdkAnswer(_headers(result), events=_events(result, secrets))
        return SdkAnswer(_headers(result), body=result.model_dump_json().encode())

    return call


async def _events(stream: Any, secrets: tuple[str, ...]) -> AsyncGenerator[bytes, None]:
    """The chunks as they arrive, ``[DONE]`` after the last; closing this closes litellm's stream."""
    try:
        async for chunk in stream:
            yield chunk.model_dump_json(exclude_none=True).encode()
        yield b"[DONE]"
    except Exception as e:
        raise failure(e, secrets) from None
    finally:
        await stream.aclose()


PROVIDER = Provider(
    kind=KIND,
    default_base_url="",  # optional: litellm knows each provider's address
    auth=lambda secret: {},  # the key goes to litellm, not into headers
    url=lambda account, deployment, endpoint: f"litellm:{deployment.upstream_model}",
    chat_params=oc.chat_params(),
    embedding_params=oc.embedding_params(),
    unsupported=frozenset(),
    from_error=oc.from_error,
    to_request=oc.to_request,
    rate_limits=oc.rate_limits,
    stream_error=oc.stream_error,
    sdk=sdk,
    needs_credential=False,  # some providers (Vertex, Bedrock via litellm) authenticate from their environment
)
