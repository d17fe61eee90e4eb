"""When workflows arrive: a rate over time (workflows per second), bursts on top, and the arrival process.

Rate shapes, as the workload file writes them::

    {constant: 13.8}
    {ramp: {from: 1, to: 20}}                      # linear over the run
    {points: [[0, 2], [1800, 12], [3600, 4]]}      # piecewise linear in seconds, flat after the last point
    {daily: [2, 1, 1, ..., 9], start_hour: 8}      # 24 hourly rates, linear between them, repeating daily

Bursts add to the shape: ``{at_s, duration_s, rate}`` adds ``rate`` for that window; ``{at_s, count}`` is
``count`` workflows at one instant. The process is ``poisson`` (independent arrivals: the usual model of
many users) or ``uniform`` (evenly spaced: no randomness in the arrivals at all). Poisson arrivals under a
varying rate are drawn by thinning: candidates at the peak rate, each kept with probability rate(t) / peak.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True)
class Shape:
    """A piecewise-linear rate through (``times[i]``, ``rates[i]``), flat after the last; ``period`` repeats it."""

    times: tuple[float, ...]
    rates: tuple[float, ...]
    period: float | None = None

    def rate(self, t: float) -> float:
        rates = self.rates
        if len(rates) == 1:
            return rates[0]
        if self.period is not None:
            t %= self.period
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return rates[0]
        if i == len(rates):
            return rates[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        return rates[i - 1] + (rates[i] - rates[i - 1]) * (t - t0) / (t1 - t0)

    @property
    def peak(self) -> float:
        return max(self.rates)

    def mean(self, duration: float) -> float:
        """The average rate over [0, duration] (trapezoids on a fine grid: exact for the linear pieces)."""
        steps = 2_000
        width = duration / steps
        return sum(self.rate((i + 0.5) * width) for i in range(steps)) / steps


def through(points: list[tuple[float, float]], period: float | None = None) -> Shape:
    """>>> through([(0, 2), (10, 4)]).rate(5)
    3.0
    """
    ordered = sorted(points)
    return Shape(tuple(float(t) for t, _ in ordered), tuple(float(r) for _, r in ordered), period)


def constant(rate: float) -> Shape:
    return through([(0.0, rate)])


def ramp(start: float, end: float, duration: float) -> Shape:
    return through([(0.0, start), (duration, end)])


def daily(hourly: list[float], start_hour: float) -> Shape:
    """24 hourly rates (at 00:00, 01:00, ...), the run starting at ``start_hour``."""
    offset = start_hour * 3600.0
    points = sorted(((h * 3600.0 - offset) % DAY, r) for h, r in enumerate(hourly))
    first, last = points[0], points[-1]
    # Close the day: the rate at 0 and at 24 h lies between the last point and the first one of the next day.
    span = first[0] + DAY - last[0]
    edge = last[1] + (first[1] - last[1]) * (DAY - last[0]) / span
    return through([(0.0, edge), *points, (DAY, edge)], period=DAY)


@dataclass(frozen=True)
class Burst:
    at: float
    duration: float = 0.0  # 0: ``count`` arrivals at once
    rate: float = 0.0
    count: int = 0


@dataclass(frozen=True)
class Arrivals:
    shape: Shape
    bursts: tuple[Burst, ...] = ()
    process: str = "poisson"  # or "uniform"

    def rate(self, t: float) -> float:
        extra = sum(b.rate for b in self.bursts if b.duration and b.at <= t < b.at + b.duration)
        return self.shape.rate(t) + extra

    def scaled_to(self, rate: float) -> Arrivals:
        """A constant ``rate`` with no bursts (the capacity search's probes)."""
        return Arrivals(constant(rate), (), self.process)


def times(arrivals: Arrivals, duration: float, rng: random.Random) -> Iterator[float]:
    """Arrival times in [0, duration), in order."""
    spread = _poisson(arrivals, duration, rng) if arrivals.process == "poisson" else _even(arrivals, duration)
    instant = sorted(b.at for b in arrivals.bursts if not b.duration and b.at < duration for _ in range(b.count))
    return heapq.merge(spread, instant)


def _poisson(arrivals: Arrivals, duration: float, rng: random.Random) -> Iterator[float]:
    peak = arrivals.shape.peak + sum(b.rate for b in arrivals.bursts if b.duration)
    if peak <= 0:
        return
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration:
            return
        if rng.random() * peak < arrivals.rate(t):
            yield t


def _even(arrivals: Arrivals, duration: float) -> Iterator[float]:
    """Evenly spaced at the local rate: each gap is one over the rate where it starts."""
    t = 0.0
    while True:
        rate = arrivals.rate(t)
        t += 1.0 / rate if rate > 0 else 1.0
        if t >= duration:
            return
        if rate > 0:
            yield t


def expected(arrivals: Arrivals, duration: float) -> float:
    """How many workflows the shape and bursts bring over ``duration`` on average."""
    spread = arrivals.shape.mean(duration) * duration
    bursts = sum(b.rate * max(0.0, min(b.duration, duration - b.at)) for b in arrivals.bursts if b.duration)
    instant = sum(b.count for b in arrivals.bursts if not b.duration and b.at < duration)
    return spread + bursts + instant if math.isfinite(spread) else math.inf
