"""Read every ``*.yaml`` under the policy directory, check it completely, build one ``Policy``.

Nothing is applied unless everything holds: ``PolicyError.errors`` lists every problem found, each
``file:line: key.path: what``, so an admin fixes them all in one pass and an invalid edit never
replaces a working policy. See ``policies/README.md`` for the format.

Hostile files cost only a refusal: the files together are read up to ``policies.max_bytes``, YAML
nesting and chain nesting are capped at ``MAX_DEPTH`` levels, and nothing recurses deeper than that.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.model import POLICY_MAX_BYTES, Deployment
from gateway.routing.policy.chains import nesting
from gateway.routing.policy.conditions import Path, Report, parse_match
from gateway.routing.policy.document import MAX_DEPTH, Document, dotted, parse
from gateway.routing.policy.files import policy_version, read_policy_files
from gateway.routing.policy.model import (
    RETRY_ON_DEFAULT,
    STRATEGIES,
    TIE_BREAKERS,
    Defaults,
    Policy,
    Retries,
    Route,
    Rule,
)
from gateway.routing.policy.retry import parse_retries, parse_retry_on

CHAIN = "chain:"
_TOP = frozenset({"chains", "routes", "aliases", "defaults"})
_RULE = frozenset(
    {"name", "match", "strategy", "tie_breaker", "candidates", "fallback", "weights", "max_cost_usd"}
    | {"retry_on", "retries"}
)


class PolicyError(Exception):
    """Every problem found in the policy files, one per line: ``file:line: what``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class _Entry:
    """One named thing (chain, route, alias) and where it was written."""

    doc: Document
    path: Path
    value: Any


class _Loader:
    def __init__(self, deployments: Mapping[str, Deployment]) -> None:
        self.deployments = deployments
        self.accounts = {d.account for d in deployments.values()}
        self.problems: list[tuple[str, int, str]] = []
        self.chains: dict[str, _Entry] = {}
        self.routes: dict[str, _Entry] = {}
        self.aliases: dict[str, _Entry] = {}
        self.defaults: _Entry | None = None
        self.expanded: dict[str, tuple[str, ...]] = {}
        self.declares_routes = False  # some file says `routes:`, even `routes: {}`

    def error(self, doc: Document, path: Path, message: str) -> None:
        self.problems.append((doc.file, doc.line(path), f"{dotted(path)}: {message}" if path else message))

    def errors(self) -> list[str]:
        return [f"{file}:{line}: {what}" for file, line, what in sorted(self.problems, key=lambda p: p[:2])]

    # -- collecting names across files ---------------------------------------------------------

    def collect(self, doc: Document) -> None:
        if doc.data is None:
            return
        if not isinstance(doc.data, dict):
            self.error(doc, (), "expected a mapping with chains, routes, aliases or defaults")
            return
        for key, value in doc.data.items():
            if key not in _TOP:
                self.error(doc, (key,), f"unknown key (expected one of: {', '.join(sorted(_TOP))})")
            elif key == "defaults":
                if self.defaults is not None:
                    self.error(doc, (key,), f"defaults are already set at {self.defaults.doc.where(('defaults',))}")
                else:
                    self.defaults = _Entry(doc, (key,), value)
            elif value is not None and not isinstance(value, dict):
                self.error(doc, (key,), f"expected a mapping of names, got {value!r}")
            else:
                self.declares_routes |= key == "routes"
                table = {"chains": self.chains, "routes": self.routes, "aliases": self.aliases}[key]
                for name, item in (value or {}).items():
                    self.name(doc, (key, name), table, _Entry(doc, (key, name), item))

    def name(self, doc: Document, path: Path, table: dict[str, _Entry], entry: _Entry) -> None:
        name = str(path[-1])
        if not name.strip() or name != name.strip():
            self.error(doc, path, "names must not be empty or start or end with spaces")
        if name in table:
            kind = {"chains": "chain", "routes": "route", "aliases": "alias"}[str(path[0])]
            self.error(doc, path, f"{kind} {name!r} is already defined at {table[name].doc.where(path)}")
        else:
            table[name] = entry

    # -- chains -------------------------------------------------------------------------------

    def check_chains(self) -> None:
        graph: dict[str, list[str]] = {}
        for name, e in self.chains.items():
            self.items(e.doc, e.path, e.value)
            graph[name] = [i[len(CHAIN) :].strip() for i in _strings(e.value) if i.startswith(CHAIN)]
        reported: set[frozenset[str]] = set()
        cycles, depth = nesting(graph)
        for cycle in cycles:
            if frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                e = self.chains[cycle[0]]
                self.error(e.doc, e.path, f"chains form a cycle: {' -> '.join(CHAIN + c for c in cycle)}")
        deep = next((name for name in self.chains if depth.get(name, 0) > MAX_DEPTH), None)
        if deep is not None:
            path = [deep]
            while len(path) < 3:
                path.append(max((n for n in graph[path[-1]] if n in graph), key=lambda n: depth.get(n, 0)))
            e = self.chains[deep]
            shown = " -> ".join(CHAIN + c for c in path)
            self.error(e.doc, e.path, f"chains nest more than {MAX_DEPTH} deep ({shown} -> ...)")

    def expand(self, items: list[str], visiting: frozenset[str] = frozenset()) -> list[str]:
        out: list[str] = []
        for item in items:
            if not item.startswith(CHAIN):
                out.append(item)
                continue
            name = item[len(CHAIN) :].strip()
            if name in visiting or name not in self.chains or len(visiting) >= MAX_DEPTH:
                continue  # reported by check_chains
            if name not in self.expanded:
                self.expanded[name] = tuple(self.expand(_strings(self.chains[name].value), visiting | {name}))
            out += self.expanded[name]
        return list(dict.fromkeys(out))  # first occurrence wins

    def items(self, doc: Document, path: Path, value: Any) -> tuple[str, ...]:
        """Check a list of deployment ids and ``chain:`` references; return it expanded."""
        if not isinstance(value, list) or not value:
            self.error(doc, path, f"expected a non-empty list of deployment ids or chain:<name>, got {value!r}")
            return ()
        for i, item in enumerate(value):
            at = path + (i,)
            if not isinstance(item, str):
                self.error(doc, at, f"expected a deployment id (account/model) or chain:<name>, got {item!r}")
            elif item.startswith(CHAIN):
                name = item[len(CHAIN) :].strip()
                if name not in self.chains:
                    self.error(doc, at, f"unknown chain {name!r}{_suggest(name, self.chains)}")
            elif item not in self.deployments:
                self.error(doc, at, f"unknown deployment {item!r}{_suggest(item, self.deployments)}")
        return tuple(self.expand(_strings(value)))

    # -- defaults, routes, aliases --------------------------------------------------------------

    def check_defaults(self) -> Defaults:
        e = self.defaults
        if e is None:
            return Defaults()
        if e.value is None:
            return Defaults()
        if not isinstance(e.value, dict):
            self.error(e.doc, e.path, f"expected a mapping with retry_on and retries, got {e.value!r}")
            return Defaults()
        report = self.reporter(e.doc)
        for key in e.value:
            if key not in ("retry_on", "retries"):
                report(e.path + (key,), "unknown key (expected one of: retries, retry_on)")
        retry_on = RETRY_ON_DEFAULT
        if "retry_on" in e.value:
            retry_on = parse_retry_on(e.value["retry_on"], e.path + ("retry_on",), report)
        retries = parse_retries(e.value.get("retries"), Retries(), e.path + ("retries",), report)
        return Defaults(retry_on, retries)

    def reporter(self, doc: Document) -> Report:
        return lambda path, message: self.error(doc, path, message)

    def route(self, name: str, e: _Entry, defaults: Defaults) -> Route:
        doc = e.doc
        if name in self.deployments or ("/" in name and name.split("/", 1)[0] in self.accounts):
            self.error(doc, e.path, "a route must not be named like a deployment id (account/model)")
        if not isinstance(e.value, list) or not e.value:
            self.error(doc, e.path, f"expected a non-empty list of rules, got {e.value!r}")
            return Route(name, ())
        rules: list[Rule] = []
        catch_all: Rule | None = None
        for i, raw in enumerate(e.value):
            before = len(self.problems)
            rule = self.rule(doc, e.path + (i,), raw, i, defaults)
            if rule is None:
                continue
            # A match with mistakes parses to fewer conditions: don't call it a catch-all or a duplicate.
            broken = any(p[2].startswith(dotted(e.path + (i, "match"))) for p in self.problems[before:])
            if catch_all is not None:
                self.error(doc, e.path + (i,), f"unreachable: it comes after the catch-all rule {catch_all.name!r}")
            earlier = next((r for r in rules if r.match and set(r.match) == set(rule.match)), None)
            if earlier is not None and not broken:
                self.error(doc, e.path + (i,), f"unreachable: its match is identical to rule {earlier.name!r}'s")
            if any(r.name == rule.name for r in rules):
                self.error(doc, e.path + (i, "name"), f"another rule of this route is named {rule.name!r}")
            if not rule.match and not broken and catch_all is None:
                catch_all = rule
            rules.append(rule)
        return Route(name, tuple(rules), self.thresholds(rules), doc.where(e.path))

    def thresholds(self, rules: list[Rule]) -> tuple[int, ...]:
        found = {b for r in rules for b in r.bounds()}
        for r in rules:
            for d in (*r.candidates, *r.fallback):
                window = self.deployments[d].context_window if d in self.deployments else None
                if window is not None:
                    found.add(window)
        return tuple(sorted(found))

    def rule(self, doc: Document, path: Path, raw: Any, index: int, defaults: Defaults) -> Rule | None:
        if not isinstance(raw, dict):
            self.error(doc, path, f"expected a rule (a mapping with candidates), got {raw!r}")
            return None
        report = self.reporter(doc)
        for key in raw:
            if key not in _RULE:
                report(path + (key,), f"unknown key (expected one of: {', '.join(sorted(_RULE))})")
        name = raw.get("name", f"#{index + 1}")
        if not isinstance(name, str) or not name:
            report(path + ("name",), f"expected a string, got {name!r}")
            name = f"#{index + 1}"
        strategy = raw.get("strategy", "priority")
        if strategy not in STRATEGIES:
            report(path + ("strategy",), f"unknown strategy {strategy!r} (expected one of: {', '.join(STRATEGIES)})")
            strategy = "priority"
        tie = raw.get("tie_breaker")
        if tie is not None and tie not in TIE_BREAKERS:
            report(path + ("tie_breaker",), f"unknown tie breaker {tie!r} (expected one of: {', '.join(TIE_BREAKERS)})")
            tie = None
        elif tie is not None and strategy in ("priority", "weighted"):
            report(path + ("tie_breaker",), f"strategy {strategy} has no ties to break")
        candidates: tuple[str, ...] = ()
        if "candidates" in raw:
            candidates = self.items(doc, path + ("candidates",), raw["candidates"])
        else:
            report(path, "candidates: required (a list of deployment ids or chain:<name>)")
        fallback = self.items(doc, path + ("fallback",), raw["fallback"]) if "fallback" in raw else ()
        cost = raw.get("max_cost_usd")
        if cost is not None and (not isinstance(cost, int | float) or isinstance(cost, bool) or cost <= 0):
            report(path + ("max_cost_usd",), f"expected a price in USD > 0, got {cost!r}")
            cost = None
        retry_on = defaults.retry_on
        if "retry_on" in raw:
            retry_on = parse_retry_on(raw["retry_on"], path + ("retry_on",), report)
        return Rule(
            name=name,
            match=parse_match(raw.get("match"), path + ("match",), report),
            strategy=strategy,
            candidates=candidates,
            fallback=fallback,
            tie_breaker=tie,
            weights=self.weights(doc, path + ("weights",), raw.get("weights"), strategy, candidates),
            max_cost_usd=float(cost) if cost is not None else None,
            retry_on=retry_on,
            retries=parse_retries(raw.get("retries"), defaults.retries, path + ("retries",), report),
            source=doc.where(path),
        )

    def weights(
        self, doc: Document, path: Path, raw: Any, strategy: str, candidates: tuple[str, ...]
    ) -> dict[str, float]:
        if raw is None:
            return {}
        if strategy != "weighted":
            self.error(doc, path, "weights are only used by strategy weighted")
            return {}
        if not isinstance(raw, dict):
            self.error(doc, path, f"expected a mapping of deployment id: weight, got {raw!r}")
            return {}
        weights: dict[str, float] = {}
        for d, w in raw.items():
            if d not in candidates:
                self.error(doc, path + (d,), f"{d!r} is not one of this rule's candidates")
            elif not isinstance(w, int | float) or isinstance(w, bool) or w <= 0:
                self.error(doc, path + (d,), f"expected a weight > 0, got {w!r}")
            else:
                weights[d] = float(w)
        return weights

    def alias(self, name: str, e: _Entry) -> str | None:
        if name in self.routes:
            self.error(
                e.doc,
                e.path,
                f"clashes with the route {name!r} defined at {self.routes[name].doc.where(('routes', name))}",
            )
            return None
        if name in self.deployments:
            self.error(e.doc, e.path, "an alias must not be named like a deployment id (account/model)")
        if not isinstance(e.value, str):
            self.error(e.doc, e.path, f"expected a route name, got {e.value!r}")
            return None
        if e.value not in self.routes:
            hint = " (aliases must name a route, not another alias)" if e.value in self.aliases else ""
            self.error(e.doc, e.path, f"unknown route {e.value!r}{hint or _suggest(e.value, self.routes)}")
            return None
        return e.value


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_policies(
    directory: str,
    deployments: Mapping[str, Deployment],
    *,
    max_bytes: int = POLICY_MAX_BYTES,
    require_routes: bool = False,
) -> Policy:
    """Load and check every policy file in ``directory`` against the configured deployments.

    A missing or empty directory is the empty policy (no routes), unless ``require_routes``: a reload
    must find a file that says ``routes:`` (``routes: {}`` to serve none), so a directory that vanished
    or files being replaced never empty the policy. Raises ``PolicyError``.
    """
    shown = os.path.normpath(directory)  # errors name policies/a.yaml, not config/../policies/a.yaml
    files, problems = read_policy_files(directory, shown, max_bytes)
    loader = _Loader(deployments)
    for name, data in files:
        path = os.path.join(shown, name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"{path}:1: not UTF-8 text: {e.reason}")
            continue
        doc, more = parse(path, text)
        problems += more
        if doc is not None:
            loader.collect(doc)
    loader.check_chains()
    defaults = loader.check_defaults()
    routes = {name: loader.route(name, e, defaults) for name, e in loader.routes.items()}
    aliases = {name: target for name, e in loader.aliases.items() if (target := loader.alias(name, e)) is not None}
    problems += loader.errors()
    if require_routes and not loader.declares_routes and not problems:
        problems.append(
            f"{shown}: no file declares routes (the directory is missing, empty or its files say nothing); "
            "the last good policy keeps serving. To serve no routes, write a file containing `routes: {}`"
        )
    if problems:
        raise PolicyError(problems)
    chains = {name: loader.expanded.get(name) or tuple(loader.expand([CHAIN + name])) for name in loader.chains}
    return Policy(
        version=policy_version(files),
        routes=routes,
        aliases=aliases,
        chains=chains,
        defaults=defaults,
        files=tuple(os.path.join(shown, n) for n, _ in files),
    )
