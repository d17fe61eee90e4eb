"""How fast ``gateway simulate`` runs: one simulated hour at 100 workflows a second, three calls each.

The plan's fleet (config/plan/fleet.yaml) with every limit multiplied so that it carries 100 workflows a
second (the traffic is served, not refused), the plan's cost-routing policy and workload, on one core:

    .venv/bin/python bench/sim_speed.py                    # an hour at 100 workflows/s
    .venv/bin/python bench/sim_speed.py --seconds 600      # shorter
    .venv/bin/python bench/sim_speed.py --json             # one JSON line, for tests
    .venv/bin/python bench/sim_speed.py --seconds 60 --repeat 2   # the faster of two runs

It runs what `make` built: the modules gateway/compiled.py lists, compiled by mypyc (``GATEWAY_PURE_PYTHON=1``
runs the Python sources instead; the output's ``code`` says which ran). It prints the wall time, the CPU time
(what the run itself used: on a shared machine, load inflates the wall time more than this, but this too), the
requests simulated, the CPU time per request and, for scale, a Python loop yardstick (10 million additions, the
mean of one run before and one after). With ``--repeat``, the figures are the run with the least CPU time per
request: another process's load only ever slows a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import the gateway package, not bench/gateway.py
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.yardstick import yardstick  # noqa: E402
from gateway import compiled  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.config.model import Account, Limits, Settings  # noqa: E402
from gateway.providers import REGISTRY  # noqa: E402
from gateway.routing.policy_load import load_policies  # noqa: E402
from gateway.sim.cli import simulation_env  # noqa: E402
from gateway.sim.reader import load  # noqa: E402
from gateway.sim.run import Setup, simulate  # noqa: E402

PLAN = Path(__file__).resolve().parents[1] / "config" / "plan"
SCALE = 8  # the plan's fleet holds about 25 workflows a second; eight times its limits hold 100 with room


def _scaled(limits: Limits) -> Limits:
    return Limits(limits.rpm and limits.rpm * SCALE, limits.tpm and limits.tpm * SCALE)


def fleet() -> Settings:
    path = str(PLAN / "fleet.yaml")
    settings = load_settings(path, simulation_env(path, os.environ), kinds=REGISTRY)
    accounts = []
    for a in settings.accounts:
        deployments = tuple(dataclasses.replace(d, limits=_scaled(d.limits)) for d in a.deployments)
        accounts.append(Account(a.name, a.kind, a.base_url, a.api_key, a.api_version, _scaled(a.limits), deployments))
    return dataclasses.replace(settings, accounts=tuple(accounts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--rate", type=float, default=100.0, help="workflows a second")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the figures are the fastest one's")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = fleet()
    policy = load_policies(settings.policy_dir, {d.id: d for d in settings.deployments})
    workload = load(str(PLAN / "workload.yaml"))
    workload = dataclasses.replace(workload, duration=args.seconds, arrivals=workload.arrivals.scaled_to(args.rate))
    before = yardstick()
    runs = [simulate(Setup(settings, policy, workload)) for _ in range(max(1, args.repeat))]
    after = yardstick()
    result = min(runs, key=lambda run: run.cpu / run.requests)
    answered = sum(c.ok for c in result.tally.classes.values())
    figures = {
        "simulated_s": args.seconds,
        "workflows_per_second": args.rate,
        "wall_s": round(result.wall, 2),
        "cpu_s": round(result.cpu, 2),
        "requests": result.requests,
        "answered": answered,
        "cpu_us_per_request": round(result.cpu / result.requests * 1e6, 1),
        "yardstick_s": round((before + after) / 2, 3),
        "code": compiled.status,  # the mypyc build or the Python sources (gateway/compiled.py)
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
