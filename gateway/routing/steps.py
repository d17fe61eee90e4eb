"""The walk's contracts: the steps it is given (``Steps``: admission, sending, the record of each try and an
optional watch) and the values passed between them and the walk (``routing.walk``). The runtime wires the
real steps; tests and the simulator wire their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.config.model import Deployment
from gateway.errors import UpstreamError
from gateway.exchange import Exchange, Slot
from gateway.limits.model import Admission, BucketSpec, Reservation, Strategy
from gateway.record import RequestRecord
from gateway.types import Endpoint


@dataclass(init=False, unsafe_hash=True)
class Demand:
    """What a request asks of the limiter: estimated tokens and the caller's quota buckets."""

    tokens: Final[int]
    quotas: Final[tuple[BucketSpec, ...]]
    group: Final[str]  # requests that wait for capacity line up per group (the requested model)
    prompt: Final[int]  # the prompt part of ``tokens``

    def __init__(self, tokens: int, quotas: tuple[BucketSpec, ...], group: str, prompt: int) -> None:
        self.tokens = tokens
        self.quotas = quotas
        self.group = group
        self.prompt = prompt


@dataclass(slots=True)
class Waiting:
    """Seconds one request spent waiting on others rather than working: on providers (each attempt, from its
    send to the answer in hand, and the backoff before a retry; added by the walk) and on the client's
    upload (added by the API)."""

    seconds: float = 0.0


@dataclass(frozen=True)
class Prepared:
    """One deployment's upstream request, built before anything is reserved (translation is pure)."""

    url: str
    body: bytes


class Admit(Protocol):
    async def admit(
        self,
        record: RequestRecord,
        deployments: Sequence[Deployment],
        demand: Demand,
        strategy: Strategy,
        may_wait: bool,
    ) -> Admission | None:
        """Reserve on one of ``deployments`` (waiting in line when ``may_wait``); None: none has room and
        waiting is not allowed. Raises RateLimited when waiting cannot help."""
        ...

    async def give_back(self, reservation: Reservation | None, used: int | None) -> None: ...

    async def failed(self, deployment: Deployment, reservation: Reservation | None, error: UpstreamError) -> None:
        """Settle a failed attempt; a provider's 429 cools the deployment (or its account) for everyone."""
        ...

    async def another_try(self, deployment: Deployment) -> bool:
        """Charge a same-deployment retry to the provider's request buckets; False when they are full."""
        ...

    def observe(self, deployment: Deployment, headers: Mapping[str, str]) -> None:
        """Read the provider's own remaining capacity from an answer's headers."""
        ...


class Send(Protocol):
    def prepare(self, deployment: Deployment, body: dict[str, Any], endpoint: Endpoint) -> Prepared:
        """Translate (pure); raises UnsupportedParameter when the provider cannot express the request."""
        ...

    async def slot(self, deployment: Deployment) -> Slot:
        """A connection of the deployment's account; raises UpstreamPoolExhausted after ``timeouts.pool``."""
        ...

    async def send(self, deployment: Deployment, prepared: Prepared, slot: Slot, request_id: str) -> Exchange:
        """One try: the answer's headers, or an UpstreamError (the slot is then released)."""
        ...


class Record(Protocol):
    def allow(self, deployment_id: str, last_resort: bool = False) -> bool:
        """False while the circuit keeps the deployment out (a half-open one whose probes are taken)."""
        ...

    def started(self, deployment_id: str) -> None: ...

    def finished(
        self, deployment_id: str, error: UpstreamError | None, elapsed: float, stream: bool, counted: bool = True
    ) -> None: ...


class Spans(Protocol):
    """The trace spans of a traced request's admissions and attempts."""

    def admitting(self, stage: str, candidates: Sequence[Deployment]) -> AbstractContextManager[object]:
        """Around one admission."""
        ...

    def attempt(self, deployment: Deployment, number: int) -> AbstractContextManager[object]:
        """Around one try, from its send to the answer in hand (current while it runs)."""
        ...


class Watch(Protocol):
    def fell_back(self, route: str, source: str, target: str, error: UpstreamError) -> None:
        """The plan moved on from ``source``, which failed with ``error``, to ``target``."""
        ...

    def spans(self) -> Spans | None:
        """The current request's spans; None when it is not traced (asked once a request)."""
        ...


@dataclass(frozen=True)
class Steps:
    admit: Admit
    send: Send
    record: Record
    max_output_tokens: int  # limits.max_output_tokens: the output bound of a deployment that states none
    watch: Watch | None = None  # None: nothing watches (tests of the loop, the simulator)
