"""The deploy tests' tools (helm, promtool, hadolint, podman; `make test` fetches them with
scripts/ensure-deploy-tools) and rendering the chart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "llm-gateway"
CI_VALUES = CHART / "ci" / "cluster-tls-hpa-values.yaml"
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gateway.json"
VENV_BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.35.0"  # the kubectl and schemas the chart is checked against (scripts/ensure-deploy-tools)
OLDEST_KUBERNETES = "1.25.0"  # Chart.yaml's kubeVersion


def tool(name: str) -> str:
    """The tool's path, from the venv (helm, kubectl, hadolint) or the system (promtool, podman)."""
    found = VENV_BIN / name if (VENV_BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `make test` fetches it (scripts/ensure-deploy-tools)")
    return str(found)


def run(*command: str, cwd: Path = ROOT, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """stdout of a command that must succeed (its output is in the failure message otherwise)."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def render(*values: Path, sets: tuple[str, ...] = (), release: str = "gw") -> list[dict[str, Any]]:
    """Every manifest `helm template` renders, parsed."""
    args = [tool("helm"), "template", release, str(CHART), "--namespace", "llm"]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(run(*args)) if doc]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[m['metadata']['name'] for m in found]}"
    return found[0]


def by_name(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert found, f"no {kind} named {name}"
    return found[0]


def rendered_files(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The gateway.yaml the chart renders (parsed) and the policy files."""
    config = yaml.safe_load(by_name(manifests, "ConfigMap", "gw-llm-gateway")["data"]["gateway.yaml"])
    policies = by_name(manifests, "ConfigMap", "gw-llm-gateway-policies")["data"] or {}
    return config, dict(policies)
