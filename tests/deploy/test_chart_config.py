"""The configuration the chart renders is one the gateway accepts and runs, and a policy edit delivered the
way the kubelet updates a ConfigMap volume reaches the running gateway's every worker without a restart.

The kubelet writes a ConfigMap's files into a hidden timestamped directory, points the ``..data`` symlink at
it with one rename, and exposes each file as a symlink through ``..data`` (pkg/volume/util/atomic_writer.go);
``configmap_volume`` below lays files out the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy.tools import CI_VALUES, render, rendered_files
from harness import TEST_KEY, free_port, start_gateway
from prometheus_client.parser import text_string_to_metric_families

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

RELOAD_BOUND_S = 3.0  # the gateway polls every 1 s, waits 0.2 s for writes to settle, then loads (README: about 1 s)


def configmap_volume(directory: Path, files: dict[str, str]) -> None:
    """Write ``files`` into ``directory`` as the kubelet's atomic writer does (first time or update)."""
    directory.mkdir(parents=True, exist_ok=True)
    generation = directory / (time.strftime("..%Y_%m_%d_%H_%M_%S.") + str(time.monotonic_ns()))
    generation.mkdir()
    for name, text in files.items():
        (generation / name).write_text(text)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    os.symlink(generation.name, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")  # the one atomic step
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    for entry in os.listdir(directory):
        if not entry.startswith(".") and entry not in files:
            os.unlink(directory / entry)
    if old:
        for leftover in (directory / old).iterdir():
            leftover.unlink()
        (directory / old).rmdir()


def check(
    config: dict[str, Any], policies: dict[str, str], tmp_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    configmap_volume(tmp_path / "policies", policies)
    config["policies"]["dir"] = str(tmp_path / "policies")  # the mount path, here
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_the_production_values_render_a_configuration_the_gateway_accepts(tmp_path: Path) -> None:
    config, policies = rendered_files(render(CI_VALUES))
    env = {
        "OPENAI_API_KEY": "sk-openai-0123456789",
        "GROQ_API_KEY": "gsk_groq-0123456789",
        "AGENT_KEY_SHA256": digest("agent"),
        "ADMIN_KEY_SHA256": digest("admin"),
        "REDIS_URL": "rediss://:secret-password@redis-cluster.data.svc:6379/0",
        "GATEWAY_METRICS_TOKEN": "metrics-token-0123456789",
    }
    result = check(config, policies, tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "2 provider accounts, 3 deployments, 1 keys" in result.stdout and "1 routes, 1 aliases" in result.stdout


def test_the_default_values_say_what_is_missing(tmp_path: Path) -> None:
    """No provider account by default: the gateway refuses to start and says so (the chart's NOTES too)."""
    config, policies = rendered_files(render())
    result = check(config, policies, tmp_path, {})
    assert result.returncode == 1 and "providers: declare at least one provider account" in result.stderr


def policy(rule: str) -> str:
    return f"routes:\n  cm-route:\n    - name: {rule}\n      candidates: [a/cm-model]\n"


def chart_values(tmp_path: Path, fake: FakeUpstream, port: int, rule: str) -> Path:
    values = {
        "workers": 2,
        "gateway": {"port": port, "drainDelaySeconds": 0, "shutdownGraceSeconds": 5},
        "config": {
            "providers": {
                "a": {
                    "kind": "openai",
                    "base_url": f"{fake.url}/v1",
                    "api_key_env": "FAKE_UPSTREAM_KEY",
                    "models": {"cm-model": {}},
                }
            },
            "keys": [{"name": "tester", "key_sha256": digest(TEST_KEY), "models": ["*"]}],
            "server": {"access_log": False},
        },
        "policies": {"files": {"platform.yaml": policy(rule)}},
        "metricsToken": {"existingSecret": "gw-metrics", "key": "token"},
    }
    path = tmp_path / f"values-{rule}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


METRICS_TOKEN = "chart-metrics-token-0123456789"  # the Secret the pod's GATEWAY_METRICS_TOKEN comes from


def versions(url: str) -> dict[str, float]:
    """gateway_policy_info by version: 1 for a version some worker serves (the workers' maximum)."""
    scrape = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5)
    assert scrape.status_code == 200, scrape.text
    text = scrape.text
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "gateway_policy_info":
            found = {s.labels["version"]: s.value for s in family.samples}
    return found


def test_a_policy_configmap_update_reaches_every_worker_without_a_restart(
    tmp_path: Path, fresh_fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    fake, _ = fresh_fakes
    port = free_port()
    config, policies = rendered_files(render(chart_values(tmp_path, fake, port, "first")))
    assert config["server"]["workers"] == 2
    mount = tmp_path / "etc-llm-gateway-policies"
    configmap_volume(mount, policies)
    config["policies"]["dir"] = str(mount)
    gateway = start_gateway(tmp_path / "gw", yaml.safe_dump(config), port, env={"GATEWAY_METRICS_TOKEN": METRICS_TOKEN})
    try:
        assert httpx.get(f"{gateway.url}/metrics", timeout=5).status_code == 401  # the chart's token guards it
        chat = {"model": "cm-route", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        auth = {"authorization": f"Bearer {TEST_KEY}"}
        first = httpx.post(f"{gateway.base_url}/chat/completions", json=chat, headers=auth, timeout=10)
        assert first.status_code == 200 and first.headers["x-gateway-rule"] == "cm-route/first"
        old = first.headers["x-gateway-policy-version"]
        deadline = time.monotonic() + 10
        while versions(gateway.url) != {old: 1.0}:  # both workers up and serving the first version
            assert time.monotonic() < deadline, versions(gateway.url)
            time.sleep(0.05)

        _, updated = rendered_files(render(chart_values(tmp_path, fake, port, "second")))
        configmap_volume(mount, updated)
        changed = time.monotonic()
        while True:
            seen = versions(gateway.url)
            if seen.get(old) == 0.0 and len(seen) == 2:  # every worker dropped the old version for the new one
                break
            assert time.monotonic() - changed < RELOAD_BOUND_S, f"not reloaded everywhere: {seen}"
            time.sleep(0.05)
        took = time.monotonic() - changed
        print(f"CONFIGMAP_RELOAD: every worker serves the new policy {took:.2f} s after the kubelet's swap")
        for _ in range(6):  # whichever worker answers
            r = httpx.post(f"{gateway.base_url}/chat/completions", json=chat, headers=auth, timeout=10)
            assert r.status_code == 200 and r.headers["x-gateway-rule"] == "cm-route/second"
        assert gateway.proc.poll() is None  # the same process: no restart
    finally:
        assert gateway.stop() == 0


@pytest.mark.parametrize("update", [1, 2])
def test_configmap_volume_layout_is_the_kubelets(tmp_path: Path, update: int) -> None:
    """The helper itself: visible names are symlinks through ``..data``; old generations are removed."""
    for i in range(update):
        configmap_volume(tmp_path, {"a.yaml": f"routes: {{}}  # {i}\n"})
    assert sorted(os.listdir(tmp_path))[-1] == "a.yaml" and os.readlink(tmp_path / "a.yaml") == "..data/a.yaml"
    generations = [e for e in os.listdir(tmp_path) if e.startswith("..") and e != "..data"]
    assert len(generations) == 1 and os.readlink(tmp_path / "..data") == generations[0]
    assert (tmp_path / "a.yaml").read_text() == f"routes: {{}}  # {update - 1}\n"
