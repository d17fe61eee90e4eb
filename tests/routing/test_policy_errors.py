"""Policy validation: every kind of mistake is reported as ``file:line: key.path: what``, all in one pass."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from routing.builders import dep

from gateway.routing.policy_load import PolicyError, load_policies

DEPLOYMENTS = {d.id: d for d in (dep("a", "x"), dep("a", "y"), dep("b", "x"), dep("b", "z"))}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policies(str(directory), DEPLOYMENTS)
    return info.value.errors


def rule_file(rules: str, head: str = "") -> str:
    """A route ``r`` whose rules start on line 3 (line 3 + len(head lines) with a head)."""
    return head + "routes:\n  r:\n" + textwrap.indent(textwrap.dedent(rules).lstrip("\n"), "    ")


# (file text, line, message): one row per kind of mistake.
CASES = {
    "unknown top-level key": ("routes: {}\nchainz: {}\n", 2, "chainz: unknown key (expected one of: aliases, chains"),
    "unknown rule key": (
        rule_file("- candidates: [a/x]\n  stratgy: cheapest\n"),
        4,
        "routes.r[0].stratgy: unknown key (expected one of: candidates, fallback",
    ),
    "unknown strategy": (
        rule_file("- strategy: fastest\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].strategy: unknown strategy 'fastest' (expected one of: priority, cheapest, least-loaded",
    ),
    "unknown tie breaker": (
        rule_file("- strategy: cheapest\n  tie_breaker: random\n  candidates: [a/x]\n"),
        4,
        "routes.r[0].tie_breaker: unknown tie breaker 'random'",
    ),
    "tie breaker without ties": (
        rule_file("- tie_breaker: cheapest\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].tie_breaker: strategy priority has no ties to break",
    ),
    "unknown feature": (
        rule_file("- match: {colour: red}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.colour: unknown feature (expected one of: tier, key, end_user",
    ),
    "unknown operator": (
        rule_file("- match: {prompt_tokens: {above: 5}}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.prompt_tokens.above: unknown operator (expected one of: gt, gte, lt, lte)",
    ),
    "range bound not a count": (
        rule_file("- match:\n    max_tokens: {gt: lots}\n  candidates: [a/x]\n"),
        4,
        "routes.r[0].match.max_tokens.gt: expected a token count (an integer >= 0), got 'lots'",
    ),
    "empty range": (
        rule_file("- match: {prompt_tokens: {gt: 10, lt: 5}}\n  candidates: [a/x]\n"),
        3,
        "matches no request",
    ),
    "two lower bounds": (
        rule_file("- match: {prompt_tokens: {gt: 10, gte: 5}}\n  candidates: [a/x]\n"),
        3,
        "give one lower bound (gt or gte) and one upper bound (lt or lte)",
    ),
    "bare number for a range": (
        rule_file("- match: {prompt_tokens: 5}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.prompt_tokens: expected a range such as {gt: 1000}",
    ),
    "set operator": (
        rule_file("- match: {tags: {none: [x]}}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.tags.none: unknown operator (expected any or all)",
    ),
    "bare list for tags": (
        rule_file("- match: {tags: [x, y]}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.tags: expected {any: [...]} or {all: [...]}",
    ),
    "unknown capability": (
        rule_file("- match: {capabilities: {all: [telepathy]}}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.capabilities.all: unknown capabilities ['telepathy']",
    ),
    "unknown endpoint": (
        rule_file("- match: {endpoint: images}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.endpoint: unknown endpoint ['images']",
    ),
    "stream not a boolean": (
        rule_file("- match: {stream: yes please}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.stream: expected true or false, got 'yes please'",
    ),
    "scalar of the wrong type": (
        rule_file("- match: {tier: 3}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.tier: expected a string or a non-empty list of strings, got 3",
    ),
    "unknown deployment": (
        rule_file("- candidates: [a/x, a/yy]\n"),
        3,
        "routes.r[0].candidates[1]: unknown deployment 'a/yy' (did you mean 'a/y'?)",
    ),
    "unknown chain": (
        rule_file("- candidates:\n    - a/x\n    - chain:nope\n"),
        5,
        "routes.r[0].candidates[1]: unknown chain 'nope'",
    ),
    "chain cycle": (
        "chains:\n  a: [a/x, chain:b]\n  b: [chain:c]\n  c: [chain:a]\n",
        2,
        "chains.a: chains form a cycle: chain:a -> chain:b -> chain:c -> chain:a",
    ),
    "chain referring to itself": (
        "chains:\n  a: [a/x, chain:a]\n",
        2,
        "chains.a: chains form a cycle: chain:a -> chain:a",
    ),
    "empty chain": (
        "chains:\n  a: []\n",
        2,
        "chains.a: expected a non-empty list of deployment ids or chain:<name>, got []",
    ),
    "empty candidates": (rule_file("- candidates: []\n"), 3, "routes.r[0].candidates: expected a non-empty list"),
    "missing candidates": (rule_file("- strategy: cheapest\n"), 3, "routes.r[0]: candidates: required"),
    "empty fallback": (
        rule_file("- candidates: [a/x]\n  fallback: []\n"),
        4,
        "routes.r[0].fallback: expected a non-empty",
    ),
    "candidate of the wrong type": (
        rule_file("- candidates: [a/x, {b: x}]\n"),
        3,
        "routes.r[0].candidates[1]: expected a deployment id (account/model) or chain:<name>, got {'b': 'x'}",
    ),
    "rule after a catch-all": (
        rule_file("- name: all\n  candidates: [a/x]\n- name: late\n  match: {tier: gold}\n  candidates: [a/y]\n"),
        5,
        "routes.r[1]: unreachable: it comes after the catch-all rule 'all'",
    ),
    "identical match": (
        rule_file(
            "- name: one\n  match: {tier: gold, task: x}\n  candidates: [a/x]\n"
            "- name: two\n  match: {task: x, tier: gold}\n  candidates: [a/y]\n"
        ),
        6,
        "routes.r[1]: unreachable: its match is identical to rule 'one''s",
    ),
    "duplicate rule name": (
        rule_file("- name: one\n  match: {tier: gold}\n  candidates: [a/x]\n- name: one\n  candidates: [a/y]\n"),
        6,
        "routes.r[1].name: another rule of this route is named 'one'",
    ),
    "route named like a deployment": ("routes:\n  a/x:\n    - candidates: [a/x]\n", 2, "routes.a/x: a route must not"),
    "route with no rules": ("routes:\n  r: []\n", 2, "routes.r: expected a non-empty list of rules, got []"),
    "alias clashing with a route": (
        rule_file("- candidates: [a/x]\n", "aliases:\n  r: r\n"),
        2,
        "aliases.r: clashes with the route 'r' defined at",
    ),
    "alias to an unknown route": (
        rule_file("- candidates: [a/x]\n", "aliases:\n  s: q\n"),
        2,
        "aliases.s: unknown route 'q'",
    ),
    "alias to an alias": (
        rule_file("- candidates: [a/x]\n", "aliases:\n  s: r\n  t: s\n"),
        3,
        "aliases.t: unknown route 's' (aliases must name a route, not another alias)",
    ),
    "weights for a deployment not in the rule": (
        rule_file("- strategy: weighted\n  candidates: [a/x, a/y]\n  weights: {a/x: 3, b/z: 1}\n"),
        5,
        "routes.r[0].weights.b/z: 'b/z' is not one of this rule's candidates",
    ),
    "weights that are not positive": (
        rule_file("- strategy: weighted\n  candidates: [a/x, a/y]\n  weights: {a/x: 0}\n"),
        5,
        "routes.r[0].weights.a/x: expected a weight > 0, got 0",
    ),
    "weights without weighted": (
        rule_file("- candidates: [a/x, a/y]\n  weights: {a/x: 2}\n"),
        4,
        "routes.r[0].weights: weights are only used by strategy weighted",
    ),
    "cost ceiling not a price": (
        rule_file("- candidates: [a/x]\n  max_cost_usd: free\n"),
        4,
        "routes.r[0].max_cost_usd: expected a price in USD > 0, got 'free'",
    ),
    "retry on 400": (
        rule_file("- candidates: [a/x]\n  retry_on: [429, 400]\n"),
        4,
        "routes.r[0].retry_on[1]: cannot fall back on 400 (this status fails the same way on every deployment)",
    ),
    "retry on an unknown class": (
        "defaults:\n  retry_on: [timeout, flaky]\n",
        2,
        "defaults.retry_on[1]: cannot fall back on 'flaky'",
    ),
    "retries with a bad value": (
        "defaults:\n  retries:\n    same_deployment: -1\n",
        3,
        "defaults.retries.same_deployment: expected an integer >= 0, got -1",
    ),
    "retries with an unknown key": (
        "defaults:\n  retries: {attempts: 3}\n",
        2,
        "defaults.retries.attempts: unknown key (expected one of: same_deployment, backoff_ms",
    ),
    "inconsistent retries": (
        "defaults:\n  retries: {attempt_timeout_s: 60, deadline_s: 30}\n",
        2,
        "defaults.retries: deadline_s (30) is below attempt_timeout_s (60)",
    ),
    "section of the wrong type": ("routes: [r]\n", 1, "routes: expected a mapping of names, got ['r']"),
    "document of the wrong type": ("- a\n- b\n", 1, "expected a mapping with chains, routes, aliases or defaults"),
    "invalid YAML": ("routes:\n  r: [a/x\n", 3, "invalid YAML"),
    "duplicate key": ("chains:\n  a: [a/x]\n  a: [a/y]\n", 3, "chains.a: duplicate key (first at line 2)"),
    "python tag": (
        "chains:\n  a: !!python/object/apply:os.system [echo hi]\n",
        2,
        "chains.a: the YAML tag tag:yaml.org,2002:python/object/apply:os.system is not allowed in a policy",
    ),
    "custom tag": ("chains:\n  a: [!env X]\n", 2, "chains.a[0]: the YAML tag !env is not allowed in a policy"),
    "binary tag": ("chains:\n  a: [!!binary aGk=]\n", 2, "the YAML tag tag:yaml.org,2002:binary is not allowed"),
    "unquoted date": (
        "chains:\n  a: [2024-01-01]\n",
        2,
        "tag:yaml.org,2002:timestamp is not allowed in a policy (quote",
    ),
    "anchors and aliases": (
        "chains:\n  a: &x [a/x]\n  b: *x\n",
        3,  # where the alias is used
        "chains.b: anchors and aliases (*name) are not supported",
    ),
    "merge keys": (
        rule_file("- &base {candidates: [a/x]}\n- <<: *base\n  match: {tier: t}\n"),
        4,
        "routes.r[1]: merge keys (<<) are not supported",
    ),
    "complex key": ("chains:\n  ? [a, b]\n  : [a/x]\n", 2, "chains: keys must be plain strings"),
    "name with spaces": ('chains:\n  " cheap": [a/x]\n', 2, "chains. cheap: names must not be empty or start or end"),
    "rule not a mapping": (
        rule_file("- a/x\n"),
        3,
        "routes.r[0]: expected a rule (a mapping with candidates), got 'a/x'",
    ),
    "rule name not a string": (
        rule_file("- name: [x]\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].name: expected a string",
    ),
    "match not a mapping": (
        rule_file("- match: [tier]\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match: expected a mapping of feature: condition, got ['tier']",
    ),
    "set operator without a list": (
        rule_file("- match: {tags: {any: 3}}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.tags.any: expected a non-empty list of strings, got 3",
    ),
    "empty set condition": (
        rule_file("- match: {tags: {}}\n  candidates: [a/x]\n"),
        3,
        "routes.r[0].match.tags: expected {any: [...]} or {all: [...]}, got an empty mapping",
    ),
    "weights not a mapping": (
        rule_file("- strategy: weighted\n  candidates: [a/x]\n  weights: [a/x]\n"),
        5,
        "routes.r[0].weights: expected a mapping of deployment id: weight, got ['a/x']",
    ),
    "alias named like a deployment": (
        rule_file("- candidates: [a/x]\n", "aliases:\n  a/x: r\n"),
        2,
        "aliases.a/x: an alias must not be named like a deployment id",
    ),
    "alias not naming a route": (
        rule_file("- candidates: [a/x]\n", "aliases:\n  s: [r]\n"),
        2,
        "aliases.s: expected a route name, got ['r']",
    ),
    "defaults not a mapping": ("defaults: [429]\n", 1, "defaults: expected a mapping with retry_on and retries"),
    "defaults with an unknown key": (
        "defaults:\n  retry_on: [429]\n  timeout: 5\n",
        3,
        "defaults.timeout: unknown key (expected one of: retries, retry_on)",
    ),
}


@pytest.mark.parametrize("text,line,message", CASES.values(), ids=CASES.keys())
def test_each_mistake_is_reported_with_file_line_and_path(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, "p.yaml", text)
    errors = errors_of(tmp_path)
    assert any(e.startswith(f"{path}:{line}: ") and message in e for e in errors), errors


def test_names_must_be_unique_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "chains:\n  cheap: [a/y]\nroutes:\n  r:\n    - candidates: [a/x]\n")
    b = write(tmp_path, "b.yaml", "# b\nchains:\n  cheap: [a/x]\nroutes:\n  r:\n    - candidates: [a/x]\n")
    errors = errors_of(tmp_path)
    assert f"{b}:3: chains.cheap: chain 'cheap' is already defined at {tmp_path / 'a.yaml'}:2" in errors
    assert f"{b}:5: routes.r: route 'r' is already defined at {tmp_path / 'a.yaml'}:4" in errors


def test_defaults_belong_to_one_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "defaults: {retry_on: [429]}\n")
    b = write(tmp_path, "b.yaml", "defaults: {retry_on: [5xx]}\n")
    assert errors_of(tmp_path) == [f"{b}:1: defaults: defaults are already set at {tmp_path / 'a.yaml'}:1"]


def test_every_error_is_collected_in_file_and_line_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        routes:
          r:
            - strategy: nope
              candidates: [a/q]
              match: {task: x}
            - match: {tier: [1]}
              candidates: [chain:missing]
        aliases:
          s: t
        """,
    )
    errors = errors_of(tmp_path)
    assert [e.split(": ")[0] for e in errors] == [f"{path}:{n}" for n in (3, 4, 6, 7, 9)]


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_bytes(b"chains:\n  a: [\xff]\n")
    assert errors_of(tmp_path) == [f"{tmp_path / 'p.yaml'}:1: not UTF-8 text: invalid start byte"]
