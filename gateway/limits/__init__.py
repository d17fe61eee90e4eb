"""Shared state in Redis (rate-limit buckets come here); the only package that imports redis.

``build_limiter`` picks the implementation: in-process buckets when no Redis is configured (each of
``workers`` processes enforcing its share of every limit, see ``share.py``), otherwise Redis with a
local fallback (see ``resilient.py``). Every implementation follows ``base.Limiter``.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.limits.base import Limiter
from gateway.limits.local import LocalLimiter
from gateway.limits.model import Admission, BucketSpec, BucketState, Candidate, Reservation
from gateway.limits.resilient import ResilientLimiter
from gateway.limits.share import WorkerShare

__all__ = [
    "Admission",
    "BucketSpec",
    "BucketState",
    "Candidate",
    "Limiter",
    "LocalLimiter",
    "Reservation",
    "ResilientLimiter",
    "WorkerShare",
    "build_limiter",
]


def build_limiter(
    redis_url: str,
    replica_id: str,
    *,
    deadline: float = 0.05,
    fail_mode: str = "closed",
    prefix: str = "llmgw",
    on_mode_change: Callable[[str], None] | None = None,
    workers: int = 1,
) -> Limiter:
    if not redis_url:
        return LocalLimiter() if workers == 1 else WorkerShare(workers)
    return ResilientLimiter(
        redis_url, replica_id, deadline=deadline, fail_mode=fail_mode, prefix=prefix, on_mode_change=on_mode_change
    )
