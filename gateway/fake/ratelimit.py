"""Requests-per-minute and tokens-per-minute limits, with OpenAI's headers. Pure; the clock is injected.

Each limit is a token bucket holding one minute's allowance that refills continuously. A request
takes 1 request and its estimate (prompt + max tokens) at admission, as OpenAI counts, and the
estimate is corrected to the actual usage when the answer is known::

    limiter = RateLimiter(rpm=60, tpm=1000, clock=time.monotonic)
    denial = limiter.admit(tokens=300)      # None: admitted
    limiter.settle(estimated=300, actual=120)
    limiter.headers()["x-ratelimit-remaining-tokens"]   # "880"
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


def format_duration(seconds: float) -> str:
    """OpenAI's duration format (Go's): ``120ms``, ``1s``, ``8.64s``, ``6m0s``, ``1h0m0s``."""
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(slots=True)
class Bucket:
    limit: int
    level: float
    updated: float
    # What ``limit`` gives, worked out once: a bucket refills on every admission, settlement and answer.
    capacity: float = field(init=False, repr=False, compare=False)
    per_second: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.capacity, self.per_second = float(self.limit), self.limit / 60.0

    def refill(self, now: float) -> None:
        if now != self.updated:  # read twice at one instant (the simulator's answers): nothing to add
            level = self.level + (now - self.updated) * self.per_second
            self.level = level if level < self.capacity else self.capacity
            self.updated = now

    def settle(self, estimated: int, actual: int) -> None:
        """Give back (or charge) the difference between an estimate taken and the real usage; never over the limit."""
        level = self.level + estimated - actual
        self.level = level if level < self.capacity else self.capacity

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` fits (the level may be below zero after an under-estimate)."""
        return max(0.0, (amount - self.level) / self.per_second) if self.per_second else math.inf

    def reset_in(self) -> float:
        """Seconds until the bucket is full again: OpenAI's ``x-ratelimit-reset-*``."""
        return self.wait_for(self.limit)

    @property
    def remaining(self) -> int:
        return int(self.level) if self.level > 0 else 0  # whole units left; int is floor above zero


@dataclass(frozen=True)
class Denial:
    """Why a request was refused. ``retry_after`` is None when waiting cannot help (too large)."""

    unit: str  # "requests" or "tokens"
    limit: int
    used: int
    requested: int
    retry_after: float | None


class RateLimiter:
    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.requests: Bucket | None = None
        self.tokens: Bucket | None = None
        self.configure(rpm, tpm)

    def configure(self, rpm: int | None, tpm: int | None) -> None:
        """Set new limits; both buckets start full."""
        now = self._clock()
        self.requests = Bucket(rpm, float(rpm), now) if rpm else None
        self.tokens = Bucket(tpm, float(tpm), now) if tpm else None

    @property
    def limited(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def _refill(self) -> None:
        now = self._clock()
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)

    def admit(self, tokens: int) -> Denial | None:
        """Take 1 request and ``tokens`` if both fit; take nothing and say why if not."""
        self._refill()
        requests, bucket = self.requests, self.tokens
        if requests is not None and requests.level < 1:
            used = requests.limit - requests.remaining
            return Denial("requests", requests.limit, used, 1, requests.wait_for(1))
        if bucket is not None and tokens > bucket.limit:
            return Denial("tokens", bucket.limit, bucket.limit - bucket.remaining, tokens, None)
        if bucket is not None and bucket.level < tokens:
            used = bucket.limit - bucket.remaining
            return Denial("tokens", bucket.limit, used, tokens, bucket.wait_for(tokens))
        if requests is not None:
            requests.level -= 1
        if bucket is not None:
            bucket.level -= tokens
        return None

    def settle(self, estimated: int, actual: int) -> None:
        """Give back (or charge) the difference between the admission estimate and the real usage."""
        if self.tokens is not None:
            self._refill()
            self.tokens.settle(estimated, actual)

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for the configured limits (none when unlimited)."""
        self._refill()
        out: dict[str, str] = {}
        for unit, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                out[f"x-ratelimit-limit-{unit}"] = str(bucket.limit)
                out[f"x-ratelimit-remaining-{unit}"] = str(bucket.remaining)
                out[f"x-ratelimit-reset-{unit}"] = format_duration(bucket.reset_in())
        return out


def retry_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (rounded up) and OpenAI's ``retry-after-ms``."""
    return {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }
