"""One simulation run: the gateway's request path, built as the runtime builds it, over modelled providers.

The admission step is the gateway's ``Admitter`` over its in-process limiter (watched) and its waiting
line; the record step is its ``Recorder`` over the circuit breaker (``Health``); both read the virtual
clock. The Prometheus metrics they update on every request are not kept (``Unmeasured``): the report comes
from the tally. The workload's workflows arrive on schedule, each a task running its calls one after
another; the run ends when the last one has finished. One seed gives separate random streams to the workload
(arrivals, workflows), the modelled providers, routing (``weighted``) and the retries' jitter, so a
change to the policy changes what the providers and routing draw, never the traffic.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import time
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.config.model import Settings
from gateway.limits import specs
from gateway.limits.queue import WaitLine
from gateway.metrics import Counted, Metrics, Observed
from gateway.providers import REGISTRY
from gateway.providers.base import Provider
from gateway.routing.admission import Admitter
from gateway.routing.health import Health
from gateway.routing.outcomes import Recorder
from gateway.routing.policy import Policy
from gateway.routing.steps import Steps
from gateway.sim import arrivals as arrival
from gateway.sim.client import Client, Draw
from gateway.sim.clock import VirtualLoop
from gateway.sim.clock import run as run_virtual
from gateway.sim.providers import ModelledFleet
from gateway.sim.tally import Tally
from gateway.sim.watch import WatchedLimiter, WatchedRecord
from gateway.sim.workload import Workload


@dataclass(frozen=True)
class Setup:
    """What is simulated: a gateway configuration, the routing policy it would serve, and the traffic."""

    settings: Settings
    policy: Policy
    workload: Workload
    registry: Mapping[str, Provider] = field(default_factory=lambda: REGISTRY)


@dataclass(frozen=True)
class Result:
    tally: Tally
    duration: float  # seconds of arrivals
    counted: float  # seconds whose arrivals are counted (the search leaves its warm-up out)
    requests: int  # sent, counted or not
    simulated: float  # virtual seconds until the last workflow finished
    wall: float  # real seconds the run took
    cpu: float  # seconds of CPU it took (what a shared machine's load does not inflate)


class _Nothing:
    """A metric's value that keeps nothing."""

    def inc(self, amount: float) -> None:
        pass


_IGNORED_COUNT: Final = Counted(_Nothing())
_IGNORED_OBSERVED: Final = Observed(_Nothing(), (_Nothing(),), ())


class Unmeasured(Metrics):
    """The gateway's metrics with the per-request updates (``counter(...)``, ``histogram(...)``: attempts,
    upstream latency and errors, fallbacks) ignored."""

    def counter(self, metric: object, *values: str) -> Counted:
        return _IGNORED_COUNT

    def histogram(self, metric: object, *values: str) -> Observed:
        return _IGNORED_OBSERVED


def streams(seed: int) -> dict[str, random.Random]:
    """Independent random streams from one seed (string seeds hash the same in every process)."""
    return {name: random.Random(f"{seed}:{name}") for name in ("workload", "providers", "routing", "retries")}


def simulate(
    setup: Setup,
    *,
    arrivals: arrival.Arrivals | None = None,
    duration: float | None = None,
    counted_from: float = 0.0,
    drained: bool = False,
    seed: int | None = None,
) -> Result:
    """Run the workload (or ``arrivals`` instead of its own) for ``duration`` seconds of arrivals; count the
    requests that arrive from ``counted_from`` on. ``drained`` starts every provider limit empty."""
    workload = setup.workload
    duration = workload.duration if duration is None else duration
    tally = Tally(duration, counted_from, duration)
    rngs = streams(workload.seed if seed is None else seed)
    shared = random.getstate()  # same-deployment retries draw their jitter from the random module
    random.seed(rngs["retries"].random())
    thresholds = gc.get_threshold()
    gc.freeze()  # as the gateway runs (app.py): the start-up heap frozen, young collections far apart
    gc.set_threshold(50_000, 20, 10)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        sent, end = run_virtual(
            lambda loop: _run(loop, setup, tally, arrivals or workload.arrivals, duration, drained, rngs)
        )
    finally:
        random.setstate(shared)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    elapsed = time.perf_counter() - started
    return Result(tally, duration, duration - counted_from, sent, end, elapsed, time.process_time() - cpu)


async def _run(
    loop: VirtualLoop,
    setup: Setup,
    tally: Tally,
    arrivals: arrival.Arrivals,
    duration: float,
    drained: bool,
    rngs: dict[str, random.Random],
) -> tuple[int, float]:
    settings, workload = setup.settings, setup.workload
    clock = loop.time
    background: set[asyncio.Task[Any]] = set()

    def spawn(work: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(work)
        background.add(task)
        task.add_done_callback(background.discard)

    limiter = WatchedLimiter(clock, tally)
    health = Health(settings.circuit, clock=clock, on_change=lambda d, c: tally.circuit(clock(), d, c))
    metrics = Unmeasured()
    accounts = {a.name: (a, setup.registry[a.kind]) for a in settings.accounts}
    pool = settings.server.max_connections_per_account * settings.server.workers
    fleet = ModelledFleet(settings, workload, setup.registry, rngs["providers"], clock, loop.sleep, pool)
    steps = Steps(
        admit=Admitter(limiter, WaitLine(), accounts, settings.limits, metrics, spawn),
        send=fleet,
        record=WatchedRecord(Recorder(health, metrics), tally),
        max_output_tokens=settings.limits.max_output_tokens,
    )
    if drained:
        fleet.drain()
        for account in settings.accounts:
            for d in account.deployments:
                await limiter.inner.cooldown(d.id, None, 0.0, drain=specs.candidate(account, d, 0).buckets)
    client = Client(settings, setup.policy, workload, steps, limiter, health, tally, rngs["routing"], clock, loop.sleep)
    draw = Draw(workload, settings.limits.default_output_tokens, rngs["workload"])
    done = loop.create_future()
    running: set[asyncio.Task[None]] = set()
    times: Iterator[float] = arrival.times(arrivals, duration, rngs["workload"])

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if task.cancelled() or task.exception() is not None:
            if not done.done():
                done.set_exception(task.exception() or RuntimeError("a simulated workflow was cancelled"))
        elif not running and next_at[0] is None and not done.done():
            done.set_result(None)

    next_at: list[float | None] = [None]

    def arrive() -> None:
        task = loop.create_task(client.workflow(draw()))
        running.add(task)
        task.add_done_callback(finished)
        schedule()

    def schedule() -> None:
        at = next(times, None)
        next_at[0] = at
        if at is not None:
            loop.call_at(at, arrive)

    schedule()
    if next_at[0] is None:
        done.set_result(None)
    try:
        await done
    finally:  # on a crash, the workflows still running; always, background work (bucket corrections)
        for task in (*running, *background):
            task.cancel()
        await asyncio.gather(*running, *background, return_exceptions=True)
    return client.sent, clock()


def capacity_rate(result: Result) -> float:
    """Workflows per second completed over the counted window."""
    completed = sum(c.completed for c in result.tally.classes.values())
    return completed / result.counted if result.counted > 0 else math.nan
