"""What one simulated request carries through the gateway's code: its shape, and what happened to it.

The gateway's steps do not pass simulation details along (a limiter sees buckets, a sender sees a prepared
body), so the request's ``Trace`` rides in a context variable: each workflow is its own asyncio task, and
the modelled providers and the watched limiter read the trace of the request that called them.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final


@dataclass(init=False, unsafe_hash=True)
class Call:
    """One request of a workflow, drawn when the workflow arrives (so two policies see the same traffic)."""

    prompt: Final[int]
    output: Final[int]  # tokens the provider will generate (at most ``cap``)
    cap: Final[int]  # the answer's cap as the provider counts it: max_tokens, else the gateway's default output
    stream: Final[bool]
    think: Final[float]  # seconds before this call is sent, after the previous answer

    def __init__(self, prompt: int, output: int, cap: int, stream: bool, think: float) -> None:
        self.prompt = prompt
        self.output = output
        self.cap = cap
        self.stream = stream
        self.think = think


class Trace:
    """A request in flight: its call, its class, when it arrived, and what happened to it. A plain class
    rather than a dataclass: most fields are written as the request goes, none compared or shown."""

    def __init__(self, call: Call, cls: str, arrived: float, counted: bool) -> None:
        self.call = call
        self.cls = cls
        self.arrived = arrived
        self.counted = counted  # its workflow arrived inside the counted window
        # What happened to it, written down as it goes (none of it is known when it starts).
        self.admitted = -1.0  # first reservation: from ``arrived`` to here it waited
        self.passed: dict[str, str] = {}  # admission passed over: "full", "cooldown"
        self.circuit_open = 0  # the rule's candidates the plan left out (circuit open)
        self.attempts: list[tuple[str, str]] = []  # (deployment, "ok" or outcome)


CURRENT: Final[ContextVar[Trace]] = ContextVar("sim_trace")
