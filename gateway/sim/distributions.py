"""Random quantities of a workload (token counts, latencies), written as data in the workload file.

Every form, with what it means::

    800                                   # always 800
    {uniform: [200, 1200]}                # evenly between the two
    {lognormal: {median: 800, p95: 3000}} # skewed, as token counts and latencies are: half below the median,
                                          # one in twenty above p95
    {exponential: {mean: 2.0}}            # memoryless (think time between calls)

Draws take the caller's ``random.Random``: one seed drives every draw of a simulation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Final

Z95 = 1.6448536269514722  # the standard normal's 95th percentile
# Final: compiled code reads it as a constant, not from the module's dict on every draw.
_RATIO: Final = 4 * math.exp(-0.5) / math.sqrt(2.0)  # the ratio-of-uniforms bound (random.NV_MAGICCONST)


class DistributionError(ValueError):
    pass


@dataclass(frozen=True)  # not slotted: compiled, a native class (gateway/compiled.py)
class Dist:
    """``kind`` is constant, uniform, lognormal or exponential; ``a`` and ``b`` its two parameters."""

    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "lognormal":  # first: token counts and latencies are most of a run's draws
            # rng.lognormvariate(a, b), drawn here: the same ratio-of-uniforms normal (Kinderman-Monahan)
            # from the same two uniforms, so the same numbers, without its two calls (three draws a request)
            random_ = rng.random
            while True:
                u1, u2 = random_(), 1.0 - random_()
                z = _RATIO * (u1 - 0.5) / u2
                if z * z / 4.0 <= -math.log(u2):
                    return math.exp(self.a + z * self.b)
        if self.kind == "constant":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0

    @property
    def mean(self) -> float:
        """>>> round(parse({"lognormal": {"median": 100, "p95": 100}}).mean, 6)
        100.0
        """
        if self.kind == "constant":
            return self.a
        if self.kind == "lognormal":
            return math.exp(self.a + self.b * self.b / 2)
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def scaled(self, factor: float) -> Dist:
        """The same shape in other units (milliseconds to seconds)."""
        if self.kind == "lognormal":
            return Dist("lognormal", self.a + math.log(factor), self.b)
        if self.kind == "uniform":
            return Dist("uniform", self.a * factor, self.b * factor)
        return Dist(self.kind, self.a * factor, self.b)


def constant(value: float) -> Dist:
    return Dist("constant", value)


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise DistributionError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def parse(value: Any) -> Dist:
    """A distribution from its workload-file form; raises DistributionError saying what is wrong.

    >>> parse(3), parse({"uniform": [1, 2]})
    (Dist(kind='constant', a=3.0, b=0.0), Dist(kind='uniform', a=1.0, b=2.0))
    """
    if not isinstance(value, dict):
        return constant(_positive(value, "a constant"))
    if len(value) != 1:
        raise DistributionError(f"expected one of constant, uniform, lognormal, exponential; got {sorted(value)}")
    ((kind, spec),) = value.items()
    if kind == "constant":
        return constant(_positive(spec, "constant"))
    if kind == "uniform":
        if not isinstance(spec, list) or len(spec) != 2:
            raise DistributionError("uniform takes [low, high]")
        low, high = _positive(spec[0], "uniform's low"), _positive(spec[1], "uniform's high")
        if high < low:
            raise DistributionError(f"uniform's high {high:g} is below its low {low:g}")
        return Dist("uniform", low, high)
    if kind == "lognormal":
        if not isinstance(spec, dict) or set(spec) != {"median", "p95"}:
            raise DistributionError("lognormal takes {median: M, p95: P}")
        median, p95 = _positive(spec["median"], "median"), _positive(spec["p95"], "p95")
        if median <= 0 or p95 < median:
            raise DistributionError(f"lognormal needs 0 < median <= p95, got median {median:g}, p95 {p95:g}")
        return Dist("lognormal", math.log(median), math.log(p95 / median) / Z95)
    if kind == "exponential":
        if not isinstance(spec, dict) or set(spec) != {"mean"}:
            raise DistributionError("exponential takes {mean: M}")
        return Dist("exponential", _positive(spec["mean"], "mean"))
    raise DistributionError(f"unknown distribution {kind!r} (constant, uniform, lognormal, exponential)")
