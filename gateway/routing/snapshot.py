"""The live state of each deployment that routing reads: circuit, load and latency (values only).

The health module builds a ``Snapshot`` (from Redis or the local limiter) and hands it to
``select.plan``; routing never measures anything itself, so a plan is a pure function of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Literal

from gateway.values import value

Circuit = Literal["closed", "open", "half_open"]


@value
class DeploymentState:
    circuit: Circuit = "closed"
    retry_in: float = 0.0  # seconds until an open circuit half-opens
    inflight: int = 0
    ttft_ms: float | None = None  # EWMA of time to first token (streams)
    latency_ms: float | None = None  # EWMA of whole-response latency
    headroom: float | None = None  # 0..1, what is left of the tightest bucket; None: no limits known
    error_rate: float = 0.0


# A deployment the health module knows nothing about is treated as healthy and idle.
UNKNOWN = DeploymentState()


@value
class Snapshot:
    deployments: Mapping[str, DeploymentState] = field(default_factory=dict)

    def state(self, deployment: str) -> DeploymentState:
        return self.deployments.get(deployment, UNKNOWN)
