"""Policy loading: files merged, chains expanded, defaults applied, versions stable (mistakes: test_policy_errors)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from routing.builders import dep

from gateway.routing.policy import Contains, OneOf, Policy, Range
from gateway.routing.policy_load import load_policies

DEPLOYMENTS = {d.id: d for d in (dep("a", "x", 8000), dep("a", "y"), dep("b", "x", 32000), dep("b", "z"))}


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(directory: Path) -> Policy:
    return load_policies(str(directory), DEPLOYMENTS)


VALID = """
chains:
  cheap: [a/y, b/z]
  all: [a/x, chain:cheap, b/x]
routes:
  r:
    - name: big
      match: {total_tokens: {gt: 10000}}
      candidates: [b/x]
    - name: rest
      strategy: cheapest
      candidates: [chain:all]
      fallback: [chain:cheap]
aliases:
  other: r
"""


def test_a_valid_policy_loads_with_chains_expanded(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", VALID)
    p = load(tmp_path)
    assert p.chains == {"cheap": ("a/y", "b/z"), "all": ("a/x", "a/y", "b/z", "b/x")}
    route = p.routes["r"]
    assert [r.name for r in route.rules] == ["big", "rest"]
    assert route.rules[1].candidates == ("a/x", "a/y", "b/z", "b/x")
    assert route.rules[1].fallback == ("a/y", "b/z")
    assert route.rules[0].match == (Range("total_tokens", gt=10000),)
    assert p.route_for("other") is route and p.route_for("nope") is None
    assert p.names() == ("r", "other")
    assert p.thresholds("other") == (8000, 10000, 32000) == p.thresholds()
    assert p.thresholds("nope") == ()
    assert p.files == (str(tmp_path / "p.yaml"),)
    assert route.rules[0].source == f"{tmp_path / 'p.yaml'}:6"


def test_files_are_merged_and_names_may_cross_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "chains:\n  cheap: [a/y]\n")
    write(tmp_path, "b.yml", "routes:\n  r:\n    - candidates: [chain:cheap]\n")
    write(tmp_path, "README.md", "not: [yaml")
    write(tmp_path, ".a.yaml.swp.yaml", "garbage: [")
    p = load(tmp_path)
    assert p.routes["r"].rules[0].candidates == ("a/y",)
    assert p.routes["r"].rules[0].name == "#1" and p.routes["r"].rules[0].strategy == "priority"


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_an_empty_or_missing_directory_is_the_empty_policy(tmp_path: Path, make: object) -> None:
    p = load(make(tmp_path))  # type: ignore[operator]
    assert p.routes == {} and p.aliases == {} and p.version == "e3b0c44298fc"
    write(tmp_path, "empty.yaml", "# nothing yet\n")
    assert load(tmp_path).routes == {}


def test_version_is_stable_and_changes_with_any_byte(tmp_path: Path) -> None:
    write(tmp_path / "one", "p.yaml", VALID)
    write(tmp_path / "two", "p.yaml", VALID)
    first = load(tmp_path / "one").version
    assert len(first) == 12 and int(first, 16) >= 0
    assert load(tmp_path / "one").version == first == load(tmp_path / "two").version  # other replicas agree
    write(tmp_path / "two", "p.yaml", VALID.replace("cheapest", "cheapest "))  # one byte
    assert load(tmp_path / "two").version != first
    write(tmp_path / "three", "q.yaml", VALID)  # same bytes, another file name
    assert load(tmp_path / "three").version != first


def test_matches_parse_into_conditions(tmp_path: Path) -> None:
    write(
        tmp_path,
        "p.yaml",
        """
        routes:
          r:
            - match:
                tier: premium
                task: [a, b]
                stream: true
                tags: {any: [x], all: [y, z]}
                capabilities: tools
                prompt_tokens: {gte: 10, lt: 20}
                key: k
                end_user: [u]
                endpoint: chat
              candidates: [a/x]
        """,
    )
    match = set(load(tmp_path).routes["r"].rules[0].match)
    assert match == {
        OneOf("tier", frozenset({"premium"})),
        OneOf("task", frozenset({"a", "b"})),
        OneOf("stream", frozenset({True})),
        Contains("tags", frozenset({"x"}), every=False),
        Contains("tags", frozenset({"y", "z"}), every=True),
        Contains("capabilities", frozenset({"tools"}), every=True),
        Range("prompt_tokens", gte=10, lt=20),
        OneOf("key_name", frozenset({"k"})),
        OneOf("end_user", frozenset({"u"})),
        OneOf("endpoint", frozenset({"chat"})),
    }


def test_defaults_and_rule_overrides(tmp_path: Path) -> None:
    write(
        tmp_path,
        "p.yaml",
        """
        defaults:
          retry_on: [429, "503", timeout]
          retries: {same_deployment: 0, deadline_s: 40}
        routes:
          r:
            - match: {tier: gold}
              candidates: [a/x]
              retry_on: [5xx]
              retries: {backoff_ms: 50}
            - candidates: [a/x]
        """,
    )
    p = load(tmp_path)
    assert p.defaults.retry_on == frozenset({"429", "503", "timeout"})
    gold, rest = p.routes["r"].rules
    assert gold.retry_on == frozenset({"5xx"}) and rest.retry_on == p.defaults.retry_on
    assert (gold.retries.same_deployment, gold.retries.backoff_ms, gold.retries.deadline_s) == (0, 50, 40.0)
    assert rest.retries == p.defaults.retries
