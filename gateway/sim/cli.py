"""``gateway simulate``: run a workload through a routing policy (or two) and report what it sustains and costs."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from gateway.config import ConfigError, config_path, load_settings
from gateway.config.model import Settings
from gateway.providers import REGISTRY
from gateway.routing.policy import Policy
from gateway.routing.policy_load import PolicyError, load_policies
from gateway.sim import chart, report, table
from gateway.sim.reader import load
from gateway.sim.report import Probe
from gateway.sim.run import Setup, simulate
from gateway.sim.search import max_rate, starting_rate
from gateway.sim.workload import WorkloadError, check, unused

# Secrets a configuration takes from the environment: a simulation sends nothing, so unset ones get this.
PLACEHOLDER = "0" * 64
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|api_key_env:\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", help="the gateway config to simulate (default: $GATEWAY_CONFIG)")
    add("--workload", required=True, help="the workload file (traffic, request classes, provider behaviour)")
    add("--compare", metavar="POLICY_DIR", help="also run a second policy directory on the same traffic")
    add("--json", metavar="PATH", help="write the report as JSON here, and the chart beside it (.html)")
    add("--chart", metavar="PATH", help="write the chart here (default: beside --json)")
    add("--seed", type=int, help="override the workload's seed")
    add("--duration", type=float, metavar="SECONDS", help="override the workload's duration_s")
    add("--rate", type=float, metavar="WORKFLOWS_PER_S", help="a constant arrival rate instead of the workload's")
    add("--no-search", action="store_true", help="skip the search for the highest rate held")


def simulation_env(path: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment, with every credential or digest the config names but the environment lacks set to a
    placeholder (a simulation never uses them; ``${NAME:-default}`` keeps its default)."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    filled = dict(env)
    for match in _REFERENCE.finditer(text):
        name = match.group(1) or match.group(2)
        filled.setdefault(name, PLACEHOLDER)
    return filled


def _shown(directory: str) -> str:
    """A policy directory as the admin would write it: relative to here when it is below here."""
    relative = os.path.relpath(directory)
    return os.path.normpath(directory) if relative.startswith("..") else relative


def _complain(what: str, errors: list[str]) -> int:
    print(f"{what} is invalid ({len(errors)} error{'s' * (len(errors) != 1)}):", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)
    return 1


def _policy(settings: Settings, directory: str) -> Policy:
    deployments = {d.id: d for d in settings.deployments}
    return load_policies(directory, deployments, max_bytes=settings.policy_max_bytes)


def _run(setup: Setup, label: str, args: argparse.Namespace) -> dict[str, Any]:
    workload = setup.workload
    print(f"simulating {label} ...", file=sys.stderr, flush=True)
    result = simulate(setup)
    found: tuple[float, list[Probe]] | None = None
    if not args.no_search:

        def progress(p: Probe) -> None:
            verdict = "held" if p.held else "not held"
            print(
                f"  search: {p.rate:.3f} workflows/s {verdict} ({100 * p.workflow_failure_rate:.2f} % failed)",
                file=sys.stderr,
                flush=True,
            )

        found = max_rate(setup, starting_rate(workload.arrivals, workload.duration), progress)
    return report.build(setup, result, policy_label=label, search=found)


def run(args: argparse.Namespace) -> int:
    path = config_path(args.config, os.environ)
    if path is None:
        print("gateway simulate: --config (or GATEWAY_CONFIG) names the gateway config to simulate", file=sys.stderr)
        return 1
    try:
        settings = load_settings(path, simulation_env(path, os.environ), kinds=REGISTRY)
    except ConfigError as e:
        return _complain("configuration", e.errors)
    except OSError as e:
        return _complain("configuration", [f"{path}: {e.strerror}"])
    try:
        workload = load(args.workload)
    except WorkloadError as e:
        return _complain("workload", e.errors)
    if args.seed is not None:
        workload = dataclasses.replace(workload, seed=args.seed)
    if args.duration is not None:
        workload = dataclasses.replace(workload, duration=args.duration)
    if args.rate is not None:
        workload = dataclasses.replace(workload, arrivals=workload.arrivals.scaled_to(args.rate))
    policies = [settings.policy_dir] + ([args.compare] if args.compare else [])
    setups = []
    for directory in policies:
        try:
            label = _shown(directory) if directory else "(none: clients name models)"
            setups.append((Setup(settings, _policy(settings, directory), workload), label))
        except PolicyError as e:
            return _complain(f"routing policy in {directory}", e.errors)
    problems = [p for setup, _ in setups for p in check(workload, settings, setup.policy)]
    if problems:
        return _complain("workload", sorted(set(problems)))
    for note in unused(workload, settings):
        print(f"note: {note} (ignored)", file=sys.stderr)
    reports = [_run(setup, label, args) for setup, label in setups]
    print(table.render(reports[0]) if len(reports) == 1 else table.compare(reports[0], reports[1]))
    if args.json:
        document = dict(reports[0])
        if len(reports) > 1:
            document["compared"] = reports[1]
        Path(args.json).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    where = args.chart or (str(Path(args.json).with_suffix(".html")) if args.json else None)
    if where:
        Path(where).write_text(chart.page(reports), encoding="utf-8")
        print(f"chart: {where}", file=sys.stderr)
    return 0
