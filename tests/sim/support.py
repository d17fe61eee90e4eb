"""Running ``gateway simulate`` as a user does, with configs and workloads written by tests.

A run goes through the command's own entry point (``gateway.cli.main``) in this process, which spares each
test a second of starting Python and importing the gateway; given an environment, in its own process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import yaml

from gateway.cli import main
from gateway.config import load_settings
from gateway.providers import REGISTRY
from gateway.routing.policy_load import load_policies
from gateway.sim.cli import simulation_env
from gateway.sim.reader import load
from gateway.sim.run import Setup


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def simulate(
    config: Path | str, workload: Path | str, out: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """stdout and the JSON report of one ``gateway simulate`` run; fails the test on a non-zero exit."""
    report = out / "report.json"
    argv = ["simulate", "--config", str(config), "--workload", str(workload), "--json", str(report), *extra]
    if env is not None:
        command = [sys.executable, "-m", "gateway", *argv]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        printed, complained = io.StringIO(), io.StringIO()
        with redirect_stdout(printed), redirect_stderr(complained):
            code = main(argv)
        stdout, stderr = printed.getvalue(), complained.getvalue()
    assert code == 0, f"gateway simulate failed ({code}):\n{stderr}"
    return stdout, json.loads(report.read_text())


def openai_account(limits: dict[str, int] | None = None, base_url: str = "http://127.0.0.1:9/v1") -> dict[str, Any]:
    """An OpenAI-kind account serving gpt-4o-mini, with ``limits`` on the account."""
    account: dict[str, Any] = {
        "kind": "openai",
        "base_url": base_url,
        "api_key_env": "FAKE_UPSTREAM_KEY",
        "models": {"gpt-4o-mini": {"price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}},
    }
    if limits:
        account["limits"] = limits
    return account


def setup(config: Path | str, workload: Path | str, policy_dir: Path | str | None = None) -> Setup:
    """What ``gateway simulate --config config --workload workload [--compare policy_dir]`` simulates, for
    tests that run one piece of it (a capacity probe) in this process."""
    path = str(config)
    settings = load_settings(path, simulation_env(path, os.environ), kinds=REGISTRY)
    directory = str(policy_dir) if policy_dir is not None else settings.policy_dir
    policy = load_policies(directory, {d.id: d for d in settings.deployments}, max_bytes=settings.policy_max_bytes)
    return Setup(settings, policy, load(str(workload)))
