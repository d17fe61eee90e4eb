"""Reading and checking a request before anything is routed: size, JSON, required and forbidden fields."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from gateway.config.model import MAX_N
from gateway.errors import ForbiddenField, InvalidRequest, PayloadTooLarge
from gateway.tokens import whole_number
from gateway.types import Endpoint

# Fields that would choose the upstream URL or credential in some SDK or gateway. The gateway alone
# decides where a request goes, so a request carrying any of them is refused, not quietly cleaned.
STEERING_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "api_type",
        "api_host",
        "azure_endpoint",
        "azure_deployment",
        "azure_ad_token",
        "deployment_id",
        "organization",
        "project",
        "custom_llm_provider",
        "extra_headers",
        "headers",
        "litellm_params",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "vertex_project",
        "vertex_location",
        "vertex_credentials",
        "endpoint",
        "proxy",
        "proxy_url",
        "upstream",
        "upstream_url",
        "provider_url",
    }
)
# Extension objects whose contents a pass-through adapter would read as parameters. ``metadata`` is not
# one: it is OpenAI's free-form tagging object (up to 16 string pairs), passed on as data.
EXTENSION_OBJECTS = ("extra_body",)

_MAX_REQUEST_ID = 128
_ID_BYTES = 12
# One getrandom() for this many ids: it releases the GIL, and a release on every request let the access-log
# thread in each time (about six context switches a request instead of under two, measured in process).
_IDS_PER_DRAW = 256


def _fresh_ids() -> Iterator[str]:
    """Request ids of 12 random bytes from the OS each (echoed to clients: unpredictable, not a counter)."""
    width = 2 * _ID_BYTES
    while True:
        block = os.urandom(_ID_BYTES * _IDS_PER_DRAW).hex()
        for start in range(0, len(block), width):
            yield "req_" + block[start : start + width]


_next_id = _fresh_ids().__next__


def _forked() -> None:
    global _next_id
    _next_id = _fresh_ids().__next__  # a forked worker must not hand out its parent's unused ids


os.register_at_fork(after_in_child=_forked)


class RequestHeaders(Mapping[str, str]):
    """A request's headers by lower-case name (ASGI servers send names lower-cased), a repeated one by its
    first value as Starlette's ``Headers`` has it, each decoded only when read. Made once per request:
    Starlette's scans the whole list at every lookup (and raises inside for a missing one), and the proxy
    looks up five or more, most of them absent."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = dict(reversed(raw))  # the first of a repeated name wins

    def __getitem__(self, name: str) -> str:
        return self._raw[name.encode("latin-1")].decode("latin-1")

    def get(self, name: str, default: Any = None) -> Any:
        found = self._raw.get(name.encode("latin-1"))
        return default if found is None else found.decode("latin-1")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.encode("latin-1") in self._raw

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
        return given
    return _next_id()


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole body, refused once it is over ``limit`` bytes (at once when its length says so); raises
    ``ClientDisconnect`` for a client gone mid-upload."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect  # http.disconnect: the only other message a request's receive gives
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def reject_steering(body: dict[str, Any]) -> None:
    """400 if the body tries to choose the upstream URL or credential (top level or extension objects).

    Only keys are inspected, and only where they would be read as parameters: a tool's JSON schema
    with a property named ``base_url`` is user content and passes.
    """
    found = STEERING_FIELDS.intersection(body)
    for name in EXTENSION_OBJECTS:
        nested = body.get(name)
        if isinstance(nested, dict):
            found |= {f"{name}.{k}" for k in STEERING_FIELDS.intersection(nested)}
    if found:
        first = sorted(found)[0]
        raise ForbiddenField(
            f"the field {first!r} is not allowed: the gateway chooses the upstream and its credentials",
            param=first,
        )


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model", code="missing_required_parameter")
    return model


def check_chat(body: dict[str, Any], max_n: int = MAX_N) -> str:
    model = require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty array", param="messages", code="missing_required_parameter"
        )
    if not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest("each message must be an object", param="messages")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    if "n" in body:
        # n multiplies the tokens a request reserves on its provider's buckets: capped before anything else
        # (other bad values, 0 or a string, reserve for one choice and are the provider's to refuse).
        n = whole_number(body["n"])
        if n is not None and n > max_n:
            raise InvalidRequest(f"n is too large: {n}; the most choices per request is {max_n}", param="n")
    reject_steering(body)
    return model


def check(body: dict[str, Any], endpoint: Endpoint, max_n: int) -> str:
    """The model a chat or embeddings body asks for, once the body is checked as serving checks it."""
    return check_chat(body, max_n) if endpoint == "chat" else check_embeddings(body)


def check_embeddings(body: dict[str, Any]) -> str:
    model = require_model(body)
    if "input" not in body or body["input"] in ("", []):
        raise InvalidRequest("'input' is required", param="input", code="missing_required_parameter")
    reject_steering(body)
    return model
