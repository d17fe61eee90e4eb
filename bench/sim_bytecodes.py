"""Where the simulator's time goes, counted instead of timed: Python bytecodes executed per simulated request.

    .venv/bin/python bench/sim_bytecodes.py                 # by file and by function
    .venv/bin/python bench/sim_bytecodes.py --seconds 10 --top 80
    .venv/bin/python bench/sim_bytecodes.py --lines walk,call   # also line by line in these functions

The same run as bench/sim_speed.py (the plan's fleet, eight times its limits, 100 workflows a second), only
shorter, traced opcode by opcode. A count does not depend on the machine or on what else runs on it, so
two versions of the code compare exactly, where CPU time on a shared machine moves by several per cent from
one run to the next. It is a proxy: a bytecode that calls into C (a dict made, a heap pushed) costs more
than one that adds, and the count leaves out the interpreter's work between bytecodes (frames, garbage).
A generated ``__init__`` (dataclasses) is named by its class. Tracing makes the run about 100 times slower.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

if __name__ == "__main__":  # run as a script: import the gateway package, not bench/gateway.py
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    # The Python sources' work is what is counted: mypyc's compiled modules run no bytecodes at all.
    os.environ["GATEWAY_PURE_PYTHON"] = "1"

from bench.sim_speed import PLAN, fleet  # noqa: E402
from gateway.routing.policy_load import load_policies  # noqa: E402
from gateway.sim.reader import load  # noqa: E402
from gateway.sim.run import Setup, simulate  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[1]) + "/"
STDLIB = str(Path(collections.__file__).resolve().parents[1]) + "/"

Where = tuple[str, str]  # (file, function)


def _where(frame: FrameType) -> Where:
    code = frame.f_code
    name = code.co_name
    if code.co_filename == "<string>" and "self" in frame.f_locals:  # a dataclass's generated method
        name = f"{name} {type(frame.f_locals['self']).__name__}"
    return code.co_filename.replace(ROOT, "").replace(STDLIB, "py/"), name


class Counter:
    """A ``sys.settrace`` function counting opcodes per function (and per line in ``lines``)."""

    def __init__(self, lines: set[str]) -> None:
        self.by_function: collections.Counter[Where] = collections.Counter()
        self.by_line: collections.Counter[tuple[str, int]] = collections.Counter()
        self._lines = lines

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes, frame.f_trace_lines = True, False
        where = _where(frame)
        by_function, by_line = self.by_function, self.by_line
        per_line = where[1] in self._lines

        def opcode(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                by_function[where] += 1
                if per_line:
                    by_line[(where[1], frame.f_lineno or 0)] += 1
            return opcode

        return opcode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds of arrivals")
    parser.add_argument("--top", type=int, default=50, help="functions listed")
    parser.add_argument("--lines", default="", help="functions (by name, comma-separated) to count line by line")
    args = parser.parse_args()
    settings = fleet()
    policy = load_policies(settings.policy_dir, {d.id: d for d in settings.deployments})
    workload = load(str(PLAN / "workload.yaml"))
    workload = dataclasses.replace(workload, duration=args.seconds, arrivals=workload.arrivals.scaled_to(100.0))
    simulate(Setup(settings, policy, dataclasses.replace(workload, duration=1.0)))  # imports and caches, uncounted
    counter = Counter({name for name in args.lines.split(",") if name})
    sys.settrace(counter)
    try:
        result = simulate(Setup(settings, policy, workload))
    finally:
        sys.settrace(None)
    n = result.requests
    print(f"{n} requests, {sum(counter.by_function.values()) / n:,.0f} bytecodes per request")
    by_file: collections.Counter[str] = collections.Counter()
    for (file, _), count in counter.by_function.items():
        by_file[file] += count
    print("\nper request, by file:")
    for file, count in by_file.most_common(25):
        print(f"{count / n:9.1f}  {file}")
    print("\nper request, by function:")
    for (file, function), count in counter.by_function.most_common(args.top):
        print(f"{count / n:9.1f}  {file} {function}")
    if counter.by_line:
        print("\nper request, by line:")
        for (function, line), count in sorted(counter.by_line.items()):
            print(f"{count / n:9.1f}  {function}:{line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
