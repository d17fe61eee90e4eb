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
    # What happened to it, written down as it goes (none of it is known when it starts).
    admitted: float = field(default=-1.0, init=False)  # first reservation: from ``arrived`` to here it waited
    passed: dict[str, str] = field(default_factory=dict, init=False)  # admission passed over: "full", "cooldown"
    circuit_open: int = field(default=0, init=False)  # the rule's candidates the plan left out (circuit open)
    attempts: list[tuple[str, str]] = field(default_factory=list, init=False)  # (deployment, "ok" or outcome)


CURRENT: ContextVar[Trace] = ContextVar("sim_trace")
