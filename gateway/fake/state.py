"""Everything one running fake remembers: behaviour, limits, failure RNG, counters. No I/O.

It lives on the aiohttp application and is only touched from the server's event loop; tests read
it through ``GET /_fake/stats`` rather than across threads.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from gateway.fake.behaviour import DEFAULT_MODEL, Behaviour, Behaviours, FakeSettings
from gateway.fake.ratelimit import Clock, RateLimiter
from gateway.fake.tokens import TokenCounter

LAST_REQUESTS = 50


@dataclass
class Stats:
    requests_total: int = 0
    requests_by_model: Counter[str] = field(default_factory=Counter)
    requests_by_status: Counter[str] = field(default_factory=Counter)  # "none" when no status was sent
    rate_limited: int = 0  # every 429 sent, from the limits or injected
    limit_rejections: int = 0  # 429s from the rpm/tpm limits only
    failures_injected: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    disconnects: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    last_requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LAST_REQUESTS))

    def begin(self, record: dict[str, Any]) -> None:
        self.requests_total += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.last_requests.append(record)

    def finish(self, record: dict[str, Any]) -> None:
        self.in_flight -= 1
        status = record.get("status")
        self.requests_by_status[str(status) if status is not None else "none"] += 1
        if status == 429:
            self.rate_limited += 1
        if record.get("model"):
            self.requests_by_model[record["model"]] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_model": dict(self.requests_by_model),
            "requests_by_status": dict(self.requests_by_status),
            "rate_limited": self.rate_limited,
            "limit_rejections": self.limit_rejections,
            "failures_injected": dict(self.failures_injected),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "disconnects": self.disconnects,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "last_requests": list(self.last_requests),
        }


class FakeState:
    def __init__(self, settings: FakeSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.behaviours = Behaviours(settings.behaviour)
        self.limiter = RateLimiter(settings.rpm, settings.tpm, clock)
        self.stats = Stats()
        self.rng = random.Random(settings.seed)
        self.fail_next: dict[str, int] = {}  # model (or "*") -> requests that fail regardless of rate
        self.tokens = TokenCounter()
        self.closing = False  # set at shutdown, so cancelled handlers are not counted as disconnects

    def reset(self) -> None:
        """Back to the start-up configuration, with empty counters and full buckets."""
        in_flight = self.stats.in_flight
        self.behaviours.reset()
        self.limiter.configure(self.settings.rpm, self.settings.tpm)
        self.stats = Stats(in_flight=in_flight)  # requests still running will finish into it
        self.rng = random.Random(self.settings.seed)
        self.fail_next.clear()

    def pick_failure(self, model: str, behaviour: Behaviour) -> str | None:
        """The failure this request suffers, if any: a pending fail_next first, then the seeded rate."""
        for key in (model, DEFAULT_MODEL):
            if self.fail_next.get(key, 0) > 0:
                self.fail_next[key] -= 1
                return self._injected(behaviour.failure_kind)
        if behaviour.failure_rate and self.rng.random() < behaviour.failure_rate:
            return self._injected(behaviour.failure_kind)
        return None

    def _injected(self, kind: str) -> str:
        self.stats.failures_injected[kind] += 1
        return kind

    def model_ids(self) -> list[str]:
        return sorted({*self.settings.models, *self.behaviours.overrides})
