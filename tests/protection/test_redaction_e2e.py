"""A provider that echoes the gateway's credential never gets it to a client, a log line, a metric or an admin.

Redaction was shape-based (a regex for ``sk-...`` keys): an Azure key (32 hex digits) or a self-hosted server's
token echoed in an error body reached the client and the logs. Every configured secret is now redacted by
value. Each account here holds a credential of a different shape, and one hostile provider echoes whatever
credential it was sent, in error bodies of every status and in stream error events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import yaml
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess, free_port, start_gateway
from hostile import HostileUpstream, Request, echo_credential, status, stream_then_error
from policy.support import admin, chat

from gateway.auth import digest

SHAPES = {
    "hex": ("azure", "3f9c2a7d1b8e4f6a9c0d2e1f3a5b7c9d"),  # Azure: 32 hex digits
    "b64": ("openai", "Zm9vYmFyX2Jhei1xdXV4LWtleV8xMjM0NTY3ODkw-_Aa"),  # URL-safe base64
    "jwt": ("openai-compatible", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnYXRld2F5In0.c2lnbmF0dXJlLWJ5dGVz"),
    "sk": ("openai", "sk-proj-T3stOnlyN0tRealAbCdEfGhIjKlMnOpQrStUv"),
    "short": ("openai-compatible", "q7Zx2Lm9Pk"),  # a self-hosted server's short opaque token
}
REDIS_PASSWORD = "r3d1s-pa55w0rd-in-url"
URL_PASSWORD = "pa55w0rd-in-base-url"
SECRETS = [secret for _, secret in SHAPES.values()] + [REDIS_PASSWORD, URL_PASSWORD]


def gateway_config(port: int, upstream: str) -> str:
    providers: dict[str, Any] = {
        name: {
            "kind": kind,
            "base_url": upstream if kind == "azure" else f"{upstream}/v1",
            "api_key_env": f"KEY_{name.upper()}",
            "models": {f"m-{name}": {}, f"s-{name}": {}},  # s-: streams (a 429 cools m- down)
        }
        for name, (kind, _) in SHAPES.items()
    }
    host = upstream.removeprefix("http://")
    providers["userinfo"] = {
        "kind": "azure",
        "base_url": f"http://gateway:{URL_PASSWORD}@{host}",
        "api_key_env": "KEY_HEX",
        "models": {"m-userinfo": {}},
    }
    doc = {
        "server": {"port": port, "timeouts": {"connect": 1, "first_byte": 5, "total": 10, "stream_idle": 5}},
        # Redis refuses this password: the limiter's and the health sync's failures are logged.
        "state": {"redis_url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"},
        "limits": {"fail_mode": "open"},
        "circuit": {"failure_threshold": 1_000_000, "min_requests": 1_000_000},
        "providers": providers,
        "keys": [{"name": "tester", "key_sha256": digest(TEST_KEY), "tier": "premium", "models": ["*"]}],
        "admin": {"key_sha256": digest(ADMIN_KEY)},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture(scope="module")
def echo() -> Iterator[HostileUpstream]:
    with HostileUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, echo: HostileUpstream) -> Iterator[GatewayProcess]:
    port = free_port()
    env = {f"KEY_{name.upper()}": secret for name, (_, secret) in SHAPES.items()}
    process = start_gateway(tmp_path_factory.mktemp("redaction"), gateway_config(port, echo.url), port, env)
    yield process
    process.stop()


def assert_clean(where: str, text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{leaked} in {where}: {text[:2000]}"


def assert_clean_response(response: httpx.Response) -> None:
    assert_clean("the response body", response.text)
    assert_clean("the response headers", "\n".join(f"{k}: {v}" for k, v in response.headers.items()))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_echoed_credentials_in_error_bodies_are_redacted(gw: GatewayProcess, echo: HostileUpstream, shape: str) -> None:
    model = f"m-{shape}"
    for code, client_status in ((400, 400), (401, 502), (404, 404), (500, 502), (429, 429)):  # 429 cools it: last
        echo.reply = echo_credential(code)
        response = chat(gw, model)
        assert echo.requests[-1].credential() == SHAPES[shape][1]  # the provider did get (and echo) it
        assert response.status_code == client_status, response.text
        assert_clean_response(response)
        message = response.json()["error"]["message"]
        if code == 401:
            assert "rejected the gateway's credentials" in message
        elif code == 429:
            assert "rate limited upstream" in message
        else:
            assert message == "Incorrect API key provided: [redacted]", message


@pytest.mark.parametrize("shape", list(SHAPES))
def test_echoed_credentials_in_stream_error_events_are_redacted(
    gw: GatewayProcess, echo: HostileUpstream, shape: str
) -> None:
    echo.reply = stream_then_error()
    mid_stream = chat(gw, f"s-{shape}", stream=True)
    assert mid_stream.status_code == 200
    assert_clean_response(mid_stream)
    events = [e[6:] for e in mid_stream.content.split(b"\n\n") if e.startswith(b"data: ")]
    assert orjson.loads(events[1])["error"]["message"] == "internal failure for [redacted]"
    echo.reply = stream_then_error(first_error=True)  # before the first byte: an upstream failure
    first = chat(gw, f"s-{shape}", stream=True)
    assert first.status_code == 502, first.text
    assert_clean_response(first)
    assert "internal failure for [redacted]" in first.json()["error"]["message"]


async def credential_in_content_type(request: Request, writer: asyncio.StreamWriter) -> None:
    """A 200 that is neither JSON nor SSE, whose content type (quoted in the gateway's error) holds the key."""
    content_type = f"text/html; charset={request.credential()}"
    await status(200, b"<html></html>", {"content-type": content_type}, "OK")(request, writer)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_credentials_in_headers_quoted_by_errors_are_redacted(
    gw: GatewayProcess, echo: HostileUpstream, stream: bool
) -> None:
    echo.reply = credential_in_content_type
    for shape in SHAPES:
        response = chat(gw, f"s-{shape}", stream=stream)
        assert response.status_code == 502, response.text
        assert_clean_response(response)
        assert "text/html; charset=[redacted]" in response.json()["error"]["message"]


def test_credentials_in_urls_are_redacted(gw: GatewayProcess, echo: HostileUpstream) -> None:
    echo.reply = echo_credential(500, "cannot reach http://gateway:" + URL_PASSWORD + "@backend")
    response = chat(gw, "m-userinfo")
    assert response.status_code == 502
    assert_clean_response(response)


def test_nothing_the_gateway_emits_holds_a_secret(gw: GatewayProcess, echo: HostileUpstream) -> None:
    echo.reply = echo_credential(500)
    for shape in SHAPES:
        chat(gw, f"s-{shape}")
    metrics = httpx.get(f"{gw.url}/metrics", timeout=5)
    assert_clean("/metrics", metrics.text)
    config = admin(gw, "GET", "/admin/config")
    assert config.status_code == 200
    assert_clean("/admin/config", config.text)
    assert "gateway:[redacted]@" in config.text  # the URL is shown, its password is not
    for path in ("/admin/policies", "/readyz", "/v1/models"):
        response = httpx.get(gw.url + path, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
        assert_clean(path, response.text)
    assert "redis" in gw.logs().lower()  # the limiter's Redis failures were logged, without the password
    assert_clean("the gateway's log", gw.logs())
