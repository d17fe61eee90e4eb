import orjson
import pytest

from gateway import failures
from gateway.config.model import Account, Limits, Secret, ServerSettings, Settings
from gateway.errors import (
    RateLimited,
    UpstreamConnection,
    UpstreamPoolExhausted,
    UpstreamProtocol,
    UpstreamStatus,
    redact,
    redact_bytes,
    retry_after_headers,
    to_openai_error,
)
from gateway.providers import openai_compat as oc


def test_openai_error_shape() -> None:
    body = orjson.loads(to_openai_error(RateLimited("slow down", retry_after=2.5)))
    assert body == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def test_retry_after_rounds_up_and_keeps_milliseconds() -> None:
    assert retry_after_headers(2.2) == {"retry-after": "3", "retry-after-ms": "2200"}
    assert retry_after_headers(0.0) == {"retry-after": "1", "retry-after-ms": "0"}


def test_redact_removes_configured_secrets_and_key_shapes() -> None:
    text = "bad key sk-proj-ABCDEFGHIJKLMNOP and mysecretvalue"
    out = redact(text, ["mysecretvalue"])
    assert "sk-proj" not in out and "mysecretvalue" not in out


def test_upstream_status_mapping() -> None:
    assert UpstreamStatus(500, "x").status == 502
    assert UpstreamStatus(429, "x").status == 429
    assert UpstreamStatus(401, "Incorrect API key sk-x").status == 502
    assert "sk-x" not in UpstreamStatus(401, "Incorrect API key sk-x").message
    bad = UpstreamStatus(400, "bad")
    assert bad.status == 400 and not failures.triggers(bad)


def test_retry_after_headers_are_finite_whatever_they_are_given() -> None:
    """``Retry-After: inf`` from a provider made this raise (OverflowError): a 500 instead of a 429."""
    assert retry_after_headers(float("inf")) == {"retry-after": "86400", "retry-after-ms": "86400000"}
    assert retry_after_headers(float("nan")) == {"retry-after": "1", "retry-after-ms": "0"}
    assert retry_after_headers(-3.0) == {"retry-after": "1", "retry-after-ms": "0"}
    assert retry_after_headers(1e300)["retry-after"] == "86400"


@pytest.mark.parametrize(
    "headers,seconds",
    [
        ({"retry-after": "inf"}, 300.0),
        ({"retry-after": "Infinity"}, 300.0),
        ({"retry-after": "1e15"}, 300.0),
        ({"retry-after": "1e400"}, 300.0),
        ({"retry-after-ms": "1e15"}, 300.0),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # the finer one wins
        ({"retry-after-ms": "nan", "retry-after": "9"}, 9.0),  # ... when it says anything
        ({"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"}, 30.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"}, 300.0),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT", "date": "Wed, 21 Oct 2026 07:29:00 GMT"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT"}, None),  # no Date to read it against
        ({"retry-after": "Wed, 99 Foo 2026 07:28:30 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_a_providers_retry_after_is_parsed_defensively_and_capped(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert oc.retry_after(headers, 300.0) == seconds


def test_upstream_error_text_is_redacted_of_configured_secrets_of_any_shape() -> None:
    secrets = (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnYXRld2F5In0.c2lnbmF0dXJlLWJ5dGVz",
        "3f9c2a7d1b8e4f6a9c0d2e1f3a5b7c9d",
        "q7Zx2Lm9Pk",
    )
    for secret in secrets:
        body = orjson.dumps({"error": {"message": f"bad key {secret}", "code": f"c-{secret}", "param": secret}})
        error = oc.from_error(400, body, {"retry-after": "inf"}, secrets, 30.0)
        assert (error.message, error.code, error.param) == ("bad key [redacted]", "c-[redacted]", "[redacted]")
        assert error.retry_after == 30.0
    long_code = orjson.dumps({"error": {"message": "x", "code": "c" * 100_000}})
    assert len(oc.from_error(400, long_code, {}).code or "") == 128


def test_redaction_is_by_value_in_the_given_order_with_a_shape_net() -> None:
    assert redact("a abcdefgh-ijkl b", ["abcdefgh-ijkl", "abcdefgh"]) == "a [redacted] b"  # as secrets() orders
    assert redact("see task_identifier_long and sk-ant-api03-abcdefghijkl") == (
        "see task_identifier_long and [redacted]"  # a word that merely contains "sk_" is left alone
    )
    echoed = b'{"error": {"message": "k=s3cr3t-t0ken-v4lue \xff"}}'  # and a byte that is not UTF-8
    assert redact_bytes(echoed, ["s3cr3t-t0ken-v4lue"]) == b'{"error": {"message": "k=[redacted] \xef\xbf\xbd"}}'


def test_settings_secrets_cover_credentials_in_urls() -> None:
    account = Account(
        "a", "openai", "https://user:p%40ss-in-base-url@host/v1", Secret("sk-account-key-123"), None, Limits(), ()
    )
    token_only = Account("b", "openai", "https://t0ken-as-username@host/v1", None, None, Limits(), ())
    settings = Settings(
        "test", ServerSettings(), "redis://:r3dis-pa55word@127.0.0.1:6379/0", (account, token_only), (), None, "p"
    )
    assert settings.secrets() == (  # longest first: a secret containing another goes whole
        "p%40ss-in-base-url",
        "sk-account-key-123",
        "t0ken-as-username",
        "p@ss-in-base-url",
        "r3dis-pa55word",
    )
    assert Settings("test", ServerSettings(), "", (), (), None, "p").secrets() == ()


def test_new_upstream_failures_in_the_tree() -> None:
    protocol = UpstreamProtocol("bad status line")
    assert (
        isinstance(protocol, UpstreamConnection)
        and protocol.status == 502
        and protocol.code == "upstream_protocol_error"
    )
    pool = UpstreamPoolExhausted("busy")
    assert pool.status == 503 and pool.headers() == {"retry-after": "1", "retry-after-ms": "1000"}
    assert not isinstance(pool, UpstreamConnection)
