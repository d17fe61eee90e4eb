"""Error bodies exactly as OpenAI (and, for Azure paths, Azure OpenAI) send them. Pure.

A handler raises ``RequestError(status, body)``; the server renders it with the usual headers.
"""

from __future__ import annotations

from typing import Any

import orjson

RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
ORGANIZATION = "org-fake"


class RequestError(Exception):
    """A request the fake answers with an error status and an error body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        error = body.get("error")  # OpenAI's and Anthropic's shape; Bedrock's is {"message": ...}
        super().__init__(error.get("message", "") if isinstance(error, dict) else body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, error_body(message, "invalid_request_error", param, code))


def missing_param(name: str) -> RequestError:
    return invalid_request(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")


def invalid_type(name: str, expected: str, value: object) -> RequestError:
    got = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array"}
    found = got.get(type(value), "an object" if isinstance(value, dict) else "null")
    message = f"Invalid type for '{name}': expected {expected}, but got {found} instead."
    return invalid_request(message, name, "invalid_type")


def model_of(body: Any, deployment: str | None) -> str:
    """The model a request names, checked as OpenAI checks it: the body must be an object with a string
    ``model`` (``deployment``, Azure's, names it from the URL instead)."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    model = deployment or body.get("model")
    if not model:
        raise missing_param("model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    return model


def below_minimum(name: str, minimum: int, value: int) -> RequestError:
    message = f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, but got {value} instead."
    return invalid_request(message, name, "integer_below_min_value")


def bad_json() -> RequestError:
    message = (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
        "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON."
    )
    return invalid_request(message)


def invalid_url(method: str, path: str) -> RequestError:
    return RequestError(404, error_body(f"Invalid URL ({method} {path})", "invalid_request_error"))


def _mask(key: str) -> str:
    """OpenAI shows a few characters of a wrong key; the full key is never echoed."""
    return key[:3] + "*" * max(len(key) - 7, 3) + key[-4:] if len(key) > 8 else "*" * len(key)


def unauthorized(given: str | None) -> RequestError:
    if not given:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username and "
            "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
        )
        return RequestError(401, error_body(message, "invalid_request_error"))
    message = (
        f"Incorrect API key provided: {_mask(given)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return RequestError(401, error_body(message, "invalid_request_error", None, "invalid_api_key"))


def azure_unauthorized() -> RequestError:
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
        "key for an active subscription and use a correct regional API endpoint for your resource."
    )
    return RequestError(401, {"error": {"code": "401", "message": message}})


def azure_missing_api_version() -> RequestError:
    message = "Missing required query parameter 'api-version'. Please provide a supported api-version."
    return RequestError(400, {"error": {"code": "BadRequest", "message": message}})


def server_error() -> RequestError:
    message = "The server had an error while processing your request. Sorry about that!"
    return RequestError(500, error_body(message, "server_error"))


def stream_error_event() -> bytes:
    """The event a stream that fails after its 200 sends instead of a chunk: OpenAI's error object as SSE data.

    >>> event = stream_error_event()
    >>> event[:6], orjson.loads(event[6:])["error"]["type"]
    (b'data: ', 'server_error')
    """
    return b"data: " + orjson.dumps(server_error().body) + b"\n\n"


def overloaded() -> RequestError:
    return RequestError(503, error_body("The server is overloaded or not ready yet.", "server_error"))


def context_length(window: int, prompt: int, completion: int) -> RequestError:
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion."
    )
    return invalid_request(message, "messages", "context_length_exceeded")


def rate_limited(model: str, unit: str, limit: int, used: int, requested: int, wait: str) -> dict[str, Any]:
    """``unit`` is "requests" or "tokens"; ``wait`` is an OpenAI duration such as ``20s``."""
    label = "requests per min (RPM)" if unit == "requests" else "tokens per min (TPM)"
    message = (
        f"Rate limit reached for {model} in organization {ORGANIZATION} on {label}: Limit {limit}, "
        f"Used {used}, Requested {requested}. Please try again in {wait}. "
        f"Visit {RATE_LIMITS_URL} to learn more."
    )
    return error_body(message, unit, None, "rate_limit_exceeded")


def insufficient_quota() -> RequestError:
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information "
        "on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
    )
    return RequestError(429, error_body(message, "insufficient_quota", None, "insufficient_quota"))


def request_too_large(model: str, limit: int, requested: int) -> dict[str, Any]:
    message = (
        f"Request too large for {model} in organization {ORGANIZATION} on tokens per min (TPM): "
        f"Limit {limit}, Requested {requested}. The input or output tokens must be reduced in order to "
        f"run successfully. Visit {RATE_LIMITS_URL} to learn more."
    )
    return error_body(message, "tokens", None, "rate_limit_exceeded")
