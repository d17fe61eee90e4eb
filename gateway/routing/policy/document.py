"""Policy files as plain data plus the line of every key and item, read with SafeLoader only.

``yaml.compose`` builds the node tree (nothing is constructed or executed); we then turn it into
dicts, lists and scalars ourselves so we can refuse what a policy never needs: tags beyond the
plain scalar types (``!!python/object``, ``!!binary``, custom ``!tags``), anchors and aliases,
merge keys (``<<``) and duplicate keys. Policies are data, not templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from gateway.routing.policy.conditions import Path

_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class Document:
    file: str
    data: Any
    lines: Mapping[Path, int]

    def line(self, path: Path) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def where(self, path: Path) -> str:
        return f"{self.file}:{self.line(path)}"


def dotted(path: Path) -> str:
    """>>> dotted(("routes", "agent-default", 0, "strategy"))
    'routes.agent-default[0].strategy'
    """
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Reader:
    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.problems: list[tuple[int, str]] = []
        self.seen: set[int] = set()
        self.constructor = SafeConstructor()

    def value(self, node: yaml.Node, path: Path) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        where = dotted(path) or "(top level)"
        if id(node) in self.seen:
            self.problems.append((line, f"{where}: anchors and aliases (*name) are not supported"))
            return None
        self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALAR_TAGS:
            return self.constructor.construct_object(node)
        hint = " (quote the value)" if node.tag == "tag:yaml.org,2002:timestamp" else ""
        self.problems.append((line, f"{where}: the YAML tag {node.tag} is not allowed in a policy{hint}"))
        return None

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append((line, f"{dotted(path) or '(top level)'}: merge keys (<<) are not supported"))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.problems.append((line, f"{dotted(path) or '(top level)'}: keys must be plain strings"))
                continue
            key = str(key_node.value)  # as written: `1.5: x` names "1.5", not the float
            at = path + (key,)
            if key in result:
                self.problems.append((line, f"{dotted(at)}: duplicate key (first at line {self.lines[at]})"))
                continue
            self.lines[at] = line
            result[key] = self.value(value_node, at)
        return result


def parse(file: str, text: str) -> tuple[Document | None, list[str]]:
    """One file -> its document, or the problems found, each ``file:line: what``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return None, [f"{file}:{line}: invalid YAML: {getattr(e, 'problem', None) or e}"]
    reader = _Reader()
    data = reader.value(root, ()) if root is not None else None
    if reader.problems:
        return None, [f"{file}:{line}: {what}" for line, what in reader.problems]
    return Document(file, data, reader.lines), []
