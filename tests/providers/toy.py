"""A toy provider that speaks nothing like OpenAI: the proof that a new kind is one module.

Its wire format renames and reshapes everything, so every part of the provider contract is exercised:

- request ``POST {base}/generate``: ``{"engine", "turns": [{"speaker", "text"}], "limit", "live"}``;
  auth ``toy-key``, and every request signed (``toy-signature``: sha256 of key and body);
- answer ``{"outputs": [{"text", "end": "done" | "cut"}], "counts": {"in", "out"}}``;
- stream (SSE, no ``[DONE]``): ``{"piece": "..."}`` events, then ``{"end": ..., "counts": {...}}``;
- errors ``{"problem": {"what", "kind"}}``, its wait in ``toy-retry-in``; remaining capacity in
  ``toy-requests-left`` / ``toy-tokens-left``; an error event mid-stream is a ``problem`` event.

Only tests register it (``tests/providers/test_toy_e2e.py`` serves it through the real gateway).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.config.model import MAX_RETRY_AFTER_SECONDS, Account, Deployment, Secret
from gateway.errors import UpstreamError, UpstreamStatus, bounded_seconds, redact
from gateway.providers.base import Param, Provider, Signer, UnsupportedParameter, asks_nothing
from gateway.providers.openai_compat import CHAT_PARAMS
from gateway.types import Endpoint

SUPPORTED = ("model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options")
_ENDS = {"done": "stop", "cut": "length"}


def _auth(secret: Secret | None) -> dict[str, str]:
    return {"toy-key": secret.reveal()} if secret is not None else {}


def signature(key: str, body: bytes) -> str:
    return hashlib.sha256(key.encode() + b"." + body).hexdigest()


def _signer(account: Account) -> Signer:
    key = account.api_key.reveal() if account.api_key is not None else ""

    def sign(url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {"toy-signature": signature(key, body)}

    return sign


def _url(account: Account, deployment: Deployment, endpoint: Endpoint) -> str:
    return f"{account.base_url}/generate"


def _to_request(body: dict[str, Any], deployment: Deployment, provider: Provider, endpoint: Endpoint) -> dict[str, Any]:
    for name, value in body.items():
        if name not in SUPPORTED and not asks_nothing(name, value):
            raise UnsupportedParameter(name, provider.kind)
    turns = [{"speaker": m.get("role"), "text": m.get("content")} for m in body.get("messages", [])]
    out: dict[str, Any] = {"engine": deployment.upstream_model, "turns": turns, "live": bool(body.get("stream"))}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        out["limit"] = limit
    return out


def _usage(counts: Any) -> dict[str, int]:
    counts = counts if isinstance(counts, dict) else {}
    prompt, completion = int(counts.get("in", 0)), int(counts.get("out", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _from_response(body: bytes, deployment: Deployment) -> bytes:
    answer = orjson.loads(body)
    choices = [
        {
            "index": n,
            "message": {"role": "assistant", "content": output.get("text", "")},
            "finish_reason": _ENDS.get(output.get("end"), "stop"),
        }
        for n, output in enumerate(answer.get("outputs", []))
    ]
    completion = {
        "id": "chatcmpl-toy",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": deployment.upstream_model,
        "choices": choices,
        "usage": _usage(answer.get("counts")),
    }
    return orjson.dumps(completion)


class _Stream:
    """Toy events in, OpenAI chunks out, as they come."""

    def __init__(self, deployment: Deployment) -> None:
        self._model = deployment.upstream_model
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        chunk = {"id": "chatcmpl-toy", "object": "chat.completion.chunk", "created": 0, "model": self._model}
        return orjson.dumps({**chunk, "choices": [choice], **extra})

    def feed(self, event: bytes) -> list[bytes]:
        data = orjson.loads(event)
        if "problem" in data:
            problem = data["problem"]
            raise UpstreamStatus(500, f"toy failed mid-stream: {problem.get('what')}", code=problem.get("kind"))
        out = []
        if not self._started:
            out.append(self._chunk({"role": "assistant", "content": ""}))
            self._started = True
        if "piece" in data:
            out.append(self._chunk({"content": data["piece"]}))
        if "end" in data:
            out.append(self._chunk({}, _ENDS.get(data["end"], "stop")))
            usage = {"id": "chatcmpl-toy", "object": "chat.completion.chunk", "created": 0, "model": self._model}
            out += [orjson.dumps({**usage, "choices": [], "usage": _usage(data.get("counts"))}), b"[DONE]"]
        return out

    def finish(self) -> list[bytes]:
        return []


def _from_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str] = (),
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
) -> UpstreamStatus:
    try:
        problem = orjson.loads(body).get("problem", {})
    except (orjson.JSONDecodeError, AttributeError):
        problem = {}
    wait = headers.get("toy-retry-in")
    retry_after = bounded_seconds(float(wait), max_retry_after) if wait else None
    message = redact(str(problem.get("what") or f"toy answered {status}"), secrets)
    return UpstreamStatus(status, message, code=problem.get("kind"), retry_after=retry_after)


def _rate_limits(headers: Mapping[str, str]) -> dict[str, float]:
    return {
        kind: float(headers[f"toy-{kind}-left"]) for kind in ("requests", "tokens") if f"toy-{kind}-left" in headers
    }


def _stream_error(event: bytes) -> UpstreamError | None:
    return None  # the translator raises a problem event itself


PROVIDER = Provider(
    kind="toy",
    default_base_url=None,
    auth=_auth,
    url=_url,
    chat_params={name: Param() for name in SUPPORTED},
    embedding_params={},
    unsupported=frozenset(CHAT_PARAMS) - set(SUPPORTED),
    from_error=_from_error,
    to_request=_to_request,
    rate_limits=_rate_limits,
    stream_error=_stream_error,
    from_response=_from_response,
    stream=_Stream,
    signer=_signer,
    stream_usage=False,
    endpoints=frozenset({"chat"}),
)
