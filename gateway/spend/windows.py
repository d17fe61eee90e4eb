"""Calendar windows of spend and budgets: the UTC day and the UTC month a moment falls in (pure).

A window is named by its date ("2026-12-01" for a day, "2026-12" for a month), so the counters of every
replica agree on it without a shared clock beyond the hosts' own (kept by NTP; a request admitted in the
last milliseconds of a day on one host and the first of the next on another lands on either side, as
its provider's invoice may too).
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Literal

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
DAY = 86_400.0


def window(period: Period, now: float) -> str:
    """
    >>> window("day", 1764633599.5), window("month", 1764633599.5), window("day", 1764633600.0)
    ('2025-12-01', '2025-12', '2025-12-02')
    """
    t = time.gmtime(now)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}" if period == "day" else f"{t.tm_year:04d}-{t.tm_mon:02d}"


def ends(period: Period, now: float) -> float:
    """Unix time at which the window holding ``now`` ends (the next one's first second).

    >>> ends("day", 1764633599.5), ends("month", 1764633599.5)
    (1764633600.0, 1767225600.0)
    """
    t = time.gmtime(now)
    if period == "day":
        return float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + DAY)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def period_of(name: str) -> Period | None:
    """Which kind of window a name is, or None when it names none.

    >>> period_of("2026-02-28"), period_of("2026-02"), period_of("2026-13"), period_of("2026-2-5")
    ('day', 'month', None, None)
    """
    if _DAY.match(name) and _parses(name, "%Y-%m-%d"):
        return "day"
    if _MONTH.match(name) and _parses(name, "%Y-%m"):
        return "month"
    return None


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def _parses(name: str, form: str) -> bool:
    try:
        time.strptime(name, form)
    except ValueError:
        return False
    return True


def start_of(name: str) -> float:
    """Unix time at which a named window starts.

    >>> start_of("2025-12-02"), start_of("2025-12")
    (1764633600.0, 1764547200.0)
    """
    parts = [int(p) for p in name.split("-")] + [1]
    return float(calendar.timegm((parts[0], parts[1], parts[2], 0, 0, 0)))


def iso(moment: float) -> str:
    """
    >>> iso(1764633600.0)
    '2025-12-02T00:00:00Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
