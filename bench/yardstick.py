"""How fast this machine runs Python: CPU seconds for 10 million additions in a loop.

The README's timing figures were measured on one machine; another (or the same one on a busier day) runs
the same code slower or faster by about the same factor as this loop. So each timed figure is published
with the yardstick read in its run, and the tests that re-measure one scale their bounds by this
machine's yardstick against that one.
"""

from __future__ import annotations

import time


def yardstick() -> float:
    """CPU seconds for 10 million additions."""
    started, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - started
