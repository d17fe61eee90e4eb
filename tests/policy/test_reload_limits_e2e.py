"""Hostile and vanishing policy files against the real gateway (issue 8, finding 8).

A deeply nested file used to kill the file watcher silently (later valid files were never applied)
and make ``POST /admin/policies/reload`` answer 500; deleting the policy file emptied the policy, so
every route answered 404. Now each is a refusal with ``file:line`` errors while the last good policy
serves, and the watcher goes on to apply the next valid file.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from harness import GatewayProcess
from policy.support import Launch, account, admin, chat, config, metric, wait_for, write_policy

from gateway.fake.testing import FakeUpstream

FILE = "policy.yaml"
A = "routes:\n  lim:\n    - name: use-x\n      candidates: [a/lim-x]\n"
B = "routes:\n  lim:\n    - name: use-y\n      candidates: [b/lim-y]\n"
DEEP = "routes:\n  lim: " + "[" * 5000 + "]" * 5000 + "\n"
TOO_DEEP = r"(nested more than 32 levels deep|invalid YAML: exceeded maximum nesting depth)"


def start(launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream) -> GatewayProcess:
    write_policy(policy_dir, A)
    providers = {"a": account(fake.url, {"lim-x": {}}), "b": account(fake2.url, {"lim-y": {}})}
    return launch(lambda port: config(port, providers, policy_dir))


def status(gateway: GatewayProcess) -> dict[str, Any]:
    response = admin(gateway, "GET", "/admin/policies")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def rejected_since(gateway: GatewayProcess, since: float, reason: str) -> dict[str, Any] | None:
    rejection = status(gateway)["last_rejection"]
    return rejection if rejection is not None and rejection["at"] >= since and rejection["reason"] == reason else None


def serves(gateway: GatewayProcess, rule: str) -> bool:
    response = chat(gateway, "lim", max_tokens=3)
    return response.status_code == 200 and response.headers["x-gateway-rule"] == f"lim/{rule}"


def test_the_watcher_survives_a_5000_deep_file_and_applies_the_next_valid_one(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    gateway = start(launch, policy_dir, fake, fake2)
    since = time.time()
    write_policy(policy_dir, DEEP)
    rejection = wait_for("the watcher to refuse the deep file", lambda: rejected_since(gateway, since, "file change"))
    [error] = rejection["errors"]
    assert re.fullmatch(rf"{re.escape(str(policy_dir / FILE))}:2: {TOO_DEEP}", error)
    assert serves(gateway, "use-x")
    assert '"policy reload rejected"' in gateway.logs()

    since = time.time()
    os.kill(gateway.proc.pid, signal.SIGHUP)
    assert wait_for("SIGHUP to refuse it too", lambda: rejected_since(gateway, since, "SIGHUP"))

    write_policy(policy_dir, B)
    wait_for("the watcher to apply the next valid file", lambda: status(gateway)["last_rejection"] is None)
    assert serves(gateway, "use-y")
    assert metric(gateway, "gateway_policy_reloads_total", result="rejected") == 2


def test_the_reload_api_answers_422_with_the_errors_for_a_deep_file_not_500(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    gateway = start(launch, policy_dir, fake, fake2)
    write_policy(policy_dir, DEEP)
    response = admin(gateway, "POST", "/admin/policies/reload")
    assert response.status_code == 422, response.text
    assert re.search(TOO_DEEP, response.json()["last_rejection"]["errors"][0])
    assert serves(gateway, "use-x")


def test_deleting_the_policy_file_or_directory_keeps_serving_and_routes_empty_is_the_explicit_empty_policy(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    gateway = start(launch, policy_dir, fake, fake2)
    since = time.time()
    (policy_dir / FILE).unlink()
    rejection = wait_for("an empty directory refused", lambda: rejected_since(gateway, since, "file change"))
    assert "no file declares routes" in rejection["errors"][0] and "routes: {}" in rejection["errors"][0]
    assert serves(gateway, "use-x")

    policy_dir.rmdir()
    response = admin(gateway, "POST", "/admin/policies/reload")
    assert response.status_code == 422 and "no file declares routes" in response.text
    assert serves(gateway, "use-x")

    write_policy(policy_dir, "routes: {}\n", name="empty.yaml")
    wait_for("the explicit empty policy to apply", lambda: status(gateway)["last_rejection"] is None)
    wait_for("the route to be gone", lambda: chat(gateway, "lim", max_tokens=3).status_code == 404)
