"""Hostile policy files (issue 8, finding 8): nesting, size and removal are refused with ``file:line``
errors, and the policy store survives any failure of a reload while the last good policy serves.

The end-to-end side (the real gateway's watcher, SIGHUP and admin API) is in
``tests/policy/test_reload_limits_e2e.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from routing.builders import dep

from gateway.config.model import Deployment
from gateway.metrics import Metrics
from gateway.routing.policy import Policy
from gateway.routing.policy.document import MAX_DEPTH
from gateway.routing.policy_load import PolicyError, load_policies
from gateway.routing.reload import PolicyStore, fingerprint

DEPLOYMENTS = {d.id: d for d in (dep("a", "x"), dep("b", "y"))}
VALID = "routes:\n  r:\n    - name: main\n      candidates: [a/x]\n"
OTHER = "routes:\n  r:\n    - name: other\n      candidates: [b/y]\n"
# Past MAX_DEPTH levels the reader stops; libyaml's scanner, when PyYAML has it, may stop first (at 1,000).
TOO_DEEP = rf"(nested more than {MAX_DEPTH} levels deep|invalid YAML: exceeded maximum nesting depth)"


def errors_of(directory: Path, **options: Any) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policies(str(directory), DEPLOYMENTS, **options)
    return caught.value.errors


def test_yaml_nested_5000_deep_is_refused_with_file_line_not_a_recursion_error(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("routes:\n  r: " + "[" * 5000 + "]" * 5000 + "\n")
    errors = errors_of(tmp_path)
    assert len(errors) == 1
    where = re.escape(str(tmp_path / "deep.yaml"))
    assert re.fullmatch(rf"{where}:2: {TOO_DEEP}", errors[0]), errors


def test_nesting_within_the_limit_is_checked_as_usual(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("routes:\n  r: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n")
    errors = errors_of(tmp_path)
    assert not any("nested" in e for e in errors) and any("routes.r" in e for e in errors), errors


def test_chains_nested_thousands_deep_are_refused_with_the_chain_named(tmp_path: Path) -> None:
    lines = ["chains:"] + [f"  c{i}: [chain:c{i + 1}]" for i in range(3000)] + ["  c3000: [a/x]"]
    lines += ["routes:", "  r:", "    - {name: main, candidates: [chain:c0]}"]
    (tmp_path / "chains.yaml").write_text("\n".join(lines) + "\n")
    errors = errors_of(tmp_path)
    where = re.escape(str(tmp_path / "chains.yaml"))
    assert any(re.match(rf"{where}:2: chains\.c0: .*nest more than", e) for e in errors), errors[:3]


def test_policy_files_over_max_bytes_together_are_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text("# padding\n" * 20)
    assert load_policies(str(tmp_path), DEPLOYMENTS, max_bytes=len(VALID) + 200).routes
    errors = errors_of(tmp_path, max_bytes=len(VALID) + 100)
    over = f"the policy files together are over {len(VALID) + 100} bytes (policies.max_bytes)"
    assert errors == [f"{tmp_path / 'b.yaml'}:1: {over}"]


@pytest.mark.parametrize("case", ["no directory", "no files", "empty file", "comments only"])
def test_a_policy_that_declares_no_routes_is_refused_on_reload_but_routes_empty_is_explicit(
    tmp_path: Path, case: str
) -> None:
    directory = tmp_path / "policies"
    if case != "no directory":
        directory.mkdir()
    if case == "empty file":
        (directory / "p.yaml").write_text("")
    if case == "comments only":
        (directory / "p.yaml").write_text("# nothing here\n")
    assert not load_policies(str(directory), DEPLOYMENTS).routes  # at start: the empty policy
    [error] = errors_of(directory, require_routes=True)
    assert error.startswith(f"{directory}: no file declares routes") and "routes: {}" in error
    directory.mkdir(exist_ok=True)
    (directory / "empty.yaml").write_text("routes: {}\n")
    assert load_policies(str(directory), DEPLOYMENTS, require_routes=True).routes == {}


# -- the store -------------------------------------------------------------------------------------------


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs() -> Logs:
    return Logs()


def store_at(directory: Path, logs: Logs, **kwargs: Any) -> PolicyStore:
    log = logging.getLogger(f"test-policy-store-{id(logs)}")
    log.propagate = False
    log.addHandler(logs)
    return PolicyStore(str(directory), DEPLOYMENTS, Metrics(), log, **kwargs)


def sample(store: PolicyStore, result: str) -> float:
    value = store._metrics.registry.get_sample_value("gateway_policy_reloads_total", {"result": result})
    return value or 0.0


async def test_the_watcher_survives_a_hostile_file_and_applies_the_next_valid_one(tmp_path: Path, logs: Logs) -> None:
    (tmp_path / "p.yaml").write_text(VALID)
    store = store_at(tmp_path, logs)
    first = store.current.version
    await store.start(poll_interval=0.05)
    try:
        (tmp_path / "p.yaml").write_text("routes:\n  r: " + "[" * 5000 + "]" * 5000 + "\n")
        while store.last_rejection is None:
            await asyncio.sleep(0.02)
        assert store.last_rejection.reason == "file change"
        assert re.search(TOO_DEEP, store.last_rejection.errors[0])
        assert store.current.version == first
        assert any(r.getMessage() == "policy reload rejected" for r in logs.records)
        (tmp_path / "p.yaml").write_text(OTHER)
        while store.current.version == first:
            await asyncio.sleep(0.02)
        assert store.current.routes["r"].rules[0].name == "other" and store.last_rejection is None
    finally:
        await store.close()


async def test_an_unexpected_error_while_loading_is_a_rejection_and_the_watcher_keeps_going(
    tmp_path: Path, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "p.yaml").write_text(VALID)
    calls: list[int] = []

    def loader(directory: str, deployments: dict[str, Deployment], **options: Any) -> Policy:
        calls.append(1)
        if len(calls) == 2:
            raise RecursionError("maximum recursion depth exceeded")
        return load_policies(directory, deployments, **options)

    store = store_at(tmp_path, logs, loader=loader)
    first = store.current.version
    rejection = await store.refresh("test")
    assert rejection is not None and "RecursionError" in rejection.errors[0]
    assert store.current.version == first and sample(store, "rejected") == 1
    polls: list[int] = []

    def flaky_fingerprint(directory: str) -> tuple[tuple[str, int, int], ...]:
        polls.append(1)
        if len(polls) <= 3:
            raise PermissionError(13, "Permission denied")
        return fingerprint(directory)

    monkeypatch.setattr("gateway.routing.reload.fingerprint", flaky_fingerprint)
    await store.start(poll_interval=0.05)
    try:
        (tmp_path / "p.yaml").write_text(OTHER)
        while store.current.version == first:
            await asyncio.sleep(0.02)
    finally:
        await store.close()
    assert sample(store, "rejected") == 2  # the loader's error, then the directory's, logged once


async def test_removing_the_directory_keeps_the_last_good_policy(tmp_path: Path, logs: Logs) -> None:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "p.yaml").write_text(VALID)
    store = store_at(directory, logs)
    (directory / "p.yaml").unlink()
    directory.rmdir()
    rejection = await store.refresh("file change")
    assert rejection is not None and "no file declares routes" in rejection.errors[0]
    assert store.current.routes["r"].rules[0].candidates == ("a/x",)


async def test_a_slow_reload_runs_off_the_loop_and_reloads_apply_in_order(tmp_path: Path, logs: Logs) -> None:
    (tmp_path / "p.yaml").write_text(VALID)
    entered, release = threading.Event(), threading.Event()

    def loader(directory: str, deployments: dict[str, Deployment], **options: Any) -> Policy:
        policy = load_policies(directory, deployments, **options)
        if not entered.is_set() and threading.current_thread() is not threading.main_thread():
            entered.set()
            release.wait(10)  # a big policy, still being checked
        return policy

    store = store_at(tmp_path, logs, loader=loader)
    (tmp_path / "p.yaml").write_text(OTHER)
    slow = asyncio.create_task(store.refresh("SIGHUP"))  # reads OTHER, then takes its time
    while not entered.is_set():
        await asyncio.sleep(0.01)  # the loop keeps running meanwhile
    (tmp_path / "p.yaml").write_text(VALID)
    newer = asyncio.create_task(store.refresh("admin API"))  # waits for the slow one, then reads VALID
    await asyncio.sleep(0.05)
    assert not newer.done()
    release.set()
    assert await slow is None and await newer is None
    assert store.current.routes["r"].rules[0].name == "main"  # the later files win
