"""The highest arrival rate the fleet holds: a search over constant rates, each probe a short simulation.

A probe runs the workload's mix at one constant rate for ``search.warmup_s + search.window_s`` and counts
the workflows that arrive in the window. It starts with every provider limit empty, as right after a long
overload: a bucket holds a minute of capacity, and a run that starts full would pass a rate a little over
capacity for an hour before the first refusal; what a policy *sustains* is what the refill allows. A rate
is held when under 1 % of the window's workflows saw a client error (a workflow stops at its first failed
call, so per request the share is lower still, and would flatter an overloaded fleet). The search doubles
the rate until one is not held, then halves the bracket (geometrically) until it is within
``search.precision``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from gateway.sim import arrivals as arrival
from gateway.sim.report import Probe, client_error_rate
from gateway.sim.run import Setup, simulate

HELD = 0.01  # client errors under this share: the rate is held


def probe(setup: Setup, rate: float) -> Probe:
    search = setup.workload.search
    window = max(search.window, search.min_workflows / rate)
    result = simulate(
        setup,
        arrivals=setup.workload.arrivals.scaled_to(rate),
        duration=search.warmup + window,
        counted_from=search.warmup,
        drained=True,
    )
    classes = result.tally.classes.values()
    requests, errors = client_error_rate(result.tally)
    workflows = sum(c.workflows for c in classes)
    failures = (workflows - sum(c.completed for c in classes)) / workflows if workflows else 0.0
    answered = sum(c.ok for c in classes) / window
    calls = setup.workload.calls_per_workflow
    return Probe(rate, requests, errors, failures, failures < HELD, answered / calls)


def max_rate(setup: Setup, start: float, on_probe: Callable[[Probe], None] | None = None) -> tuple[float, list[Probe]]:
    """The highest rate held (workflows per second) and every probe run; 0 when even a trickle fails.

    An overloaded probe answers what the fleet can: its answered requests a second, over the calls of a
    workflow, estimate the capacity, and the next probe goes there rather than halfway.
    """
    search = setup.workload.search
    probes: list[Probe] = []
    held, failed, estimate, hinted = 0.0, math.inf, math.inf, False
    rate = max(start, MIN_RATE)
    while len(probes) < search.max_probes:
        found = probe(setup, rate)
        probes.append(found)
        if on_probe is not None:
            on_probe(found)
        if found.held:
            held = max(held, rate)
        else:
            failed, estimate = min(failed, rate), found.capacity
        if held > 0 and failed / held - 1 <= search.precision:
            break
        if math.isinf(failed):
            rate *= 2
        elif held == 0:
            if rate <= MIN_RATE:
                break
            rate = max(MIN_RATE, min(rate / 2, estimate * (1 - search.precision / 2)))
        elif not hinted and held * (1 + search.precision / 4) < estimate < failed * (1 - search.precision / 4):
            rate, hinted = estimate, True  # once: from then on the bracket is halved
        else:
            rate = math.sqrt(held * failed)
    return held, probes


MIN_RATE = 0.001  # workflows a second: below this the search gives up (0 is reported)


def starting_rate(arrivals: arrival.Arrivals, duration: float) -> float:
    """The workload's own average rate: where the search begins."""
    return max(0.01, arrival.expected(arrivals, duration) / duration)
