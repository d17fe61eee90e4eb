import orjson

from gateway.errors import RateLimited, UpstreamStatus, redact, retry_after_headers, to_openai_error


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
    assert bad.status == 400 and not bad.retryable
