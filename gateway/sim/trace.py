"""What one simulated request carries through the gateway's code: its shape, and what happened to it.

The gateway's steps do not pass simulation details along (a limiter sees buckets, a sender sees a prepared
body), so the request's ``Trace`` rides in a context variable: each workflow is its own asyncio task, and
the modelled providers and the watched limiter read the trace of the request that called them.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from gateway.values import value


@value
class Call:
    """One request of a workflow, drawn when the workflow arrives (so two policies see the same traffic)."""

    prompt: int
    output: int  # tokens the provider will generate (at most ``cap``)
    cap: int  # the answer's cap as the provider counts it: max_tokens, else the gateway's default output
    stream: bool
    think: float  # seconds before this call is sent, after the previous answer


@dataclass(slots=True)
class Trace:
    call: Call
    cls: str
    arrived: float
    counted: bool  # its workflow arrived inside the counted window
    admitted: float = -1.0  # its first reservation; from ``arrived`` to here it waited (routing takes no time)
    passed: dict[str, str] = field(default_factory=dict)  # candidates admission passed over: "full", "cooldown"
    circuit_open: int = 0  # the rule's candidates the plan left out for an open circuit
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (deployment, "ok" or failure outcome)


CURRENT: ContextVar[Trace] = ContextVar("sim_trace")
