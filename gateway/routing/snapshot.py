"""The live state of each deployment that routing reads: circuit, load and latency (values only).

The health module builds a ``Snapshot`` (from Redis or the local limiter) and hands it to
``select.plan``; routing never measures anything itself, so a plan is a pure function of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Circuit = Literal["closed", "open", "half_open"]


@dataclass(init=False, unsafe_hash=True)
class DeploymentState:
    circuit: Final[Circuit]
    retry_in: Final[float]  # seconds until an open circuit half-opens
    inflight: Final[int]
    ttft_ms: Final[float | None]  # EWMA of time to first token (streams)
    latency_ms: Final[float | None]  # EWMA of whole-response latency
    headroom: Final[float | None]  # 0..1, what is left of the tightest bucket; None: no limits known
    error_rate: Final[float]

    def __init__(
        self,
        circuit: Circuit = "closed",
        retry_in: float = 0.0,
        inflight: int = 0,
        ttft_ms: float | None = None,
        latency_ms: float | None = None,
        headroom: float | None = None,
        error_rate: float = 0.0,
    ) -> None:
        self.circuit = circuit
        self.retry_in = retry_in
        self.inflight = inflight
        self.ttft_ms = ttft_ms
        self.latency_ms = latency_ms
        self.headroom = headroom
        self.error_rate = error_rate


# A deployment the health module knows nothing about is treated as healthy and idle.
UNKNOWN: Final = DeploymentState()


@dataclass(init=False, unsafe_hash=True)
class Snapshot:
    deployments: Final[Mapping[str, DeploymentState]]

    def __init__(self, deployments: Mapping[str, DeploymentState] = MappingProxyType({})) -> None:
        self.deployments = deployments

    def state(self, deployment: str) -> DeploymentState:
        return self.deployments.get(deployment, UNKNOWN)
