"""Running ``gateway simulate`` as a user does (its own process), with configs and workloads written by tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def simulate(
    config: Path | str, workload: Path | str, out: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """stdout and the JSON report of one ``gateway simulate`` run; fails the test on a non-zero exit."""
    report = out / "report.json"
    command = [sys.executable, "-m", "gateway", "simulate", "--config", str(config), "--workload", str(workload)]
    done = subprocess.run(
        [*command, "--json", str(report), *extra], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, f"gateway simulate failed ({done.returncode}):\n{done.stderr}"
    return done.stdout, json.loads(report.read_text())


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
