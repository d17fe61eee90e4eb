import pytest

from gateway.fake.ratelimit import RateLimiter, format_duration, retry_headers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.12, "120ms"),
        (1, "1s"),
        (8.64, "8.64s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
    ],
)
def test_format_duration_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_retry_headers_round_up() -> None:
    assert retry_headers(0.2) == {"retry-after": "1", "retry-after-ms": "200"}
    assert retry_headers(29.5) == {"retry-after": "30", "retry-after-ms": "29500"}


def test_requests_per_minute_refill_continuously() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=2, tpm=None, clock=clock)
    assert limiter.admit(0) is None
    assert limiter.admit(0) is None
    denial = limiter.admit(0)
    assert denial is not None
    assert (denial.unit, denial.limit, denial.used, denial.requested) == ("requests", 2, 2, 1)
    assert denial.retry_after == pytest.approx(30.0)
    headers = limiter.headers()
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-ratelimit-limit-tokens" not in headers
    clock.now += 30
    assert limiter.admit(0) is None


def test_tokens_are_estimated_then_settled() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=1000, clock=clock)
    assert limiter.admit(600) is None
    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "400"
    limiter.settle(estimated=600, actual=100)
    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "900"
    denial = limiter.admit(950)
    assert denial is not None and denial.unit == "tokens"
    assert denial.retry_after == pytest.approx(50 / (1000 / 60))
    assert limiter.headers()["x-ratelimit-reset-tokens"] == "6s"


def test_an_under_estimate_is_charged() -> None:
    limiter = RateLimiter(rpm=None, tpm=100, clock=Clock())
    assert limiter.admit(50) is None
    limiter.settle(estimated=50, actual=150)
    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "0"
    denial = limiter.admit(1)
    assert denial is not None and denial.retry_after == pytest.approx(51 * 0.6)


def test_a_request_larger_than_the_limit_cannot_wait() -> None:
    limiter = RateLimiter(rpm=10, tpm=100, clock=Clock())
    denial = limiter.admit(101)
    assert denial is not None and denial.retry_after is None
    assert limiter.headers()["x-ratelimit-remaining-requests"] == "10"  # nothing was taken


def test_unlimited_has_no_headers() -> None:
    limiter = RateLimiter(None, None)
    assert not limiter.limited
    assert limiter.admit(10**9) is None
    assert limiter.headers() == {}
