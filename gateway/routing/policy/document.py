"""Policy files as plain data plus the line of every key and item, read with SafeLoader only.

The YAML event stream (libyaml's parser when PyYAML has it) is turned into dicts, lists and
scalars here, without building a node tree, so we can refuse what a policy never needs: tags
beyond the plain scalar types (``!!python/object``, ``!!binary``, custom ``!tags``), anchors and
aliases, merge keys (``<<``) and duplicate keys. Policies are data, not templates.

Reading is a loop over events, never a recursion, and stops past ``MAX_DEPTH`` levels of nesting:
``[[[...5,000...]]]`` is a ``file:line`` error (PyYAML's own composer would hit Python's recursion
limit), and a 1 MB policy reads in a fraction of the pure-Python composer's time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from gateway.routing.policy.conditions import Path

_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE, _STR = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:str"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
MAX_DEPTH = 32  # nested mappings and lists; the deepest real policy needs about 8


class _Stop(Exception):
    """Reading cannot go on: ``file:line: message``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.line, self.message = line, message


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


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
    """
    >>> dotted(("routes", "agent-default", 0, "strategy"))
    'routes.agent-default[0].strategy'
    """
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(slots=True)
class _Open:
    """A mapping or list being read: its path, its value so far and, in a mapping, the key read last."""

    path: Path
    value: dict[str, Any] | list[Any]
    key: str | None = None


@dataclass
class _Reader:
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)
    constructor: SafeConstructor = field(default_factory=SafeConstructor)
    resolver: Resolver = field(default_factory=Resolver)

    def read(self, events: Iterator[yaml.Event]) -> Any:
        root: Any = None
        stack: list[_Open] = []
        documents = 0
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _Stop(_line(event), "invalid YAML: expected a single document in the stream")
                continue
            if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, _ENDS):
                value: Any = stack.pop().value
            else:
                parent = stack[-1] if stack else None
                if parent is not None and isinstance(parent.value, dict) and parent.key is None:
                    parent.key = self.key(event, parent, events)
                    continue
                path = _child(parent)
                self.lines.setdefault(path, _line(event))
                opened = self.collection(event, path)
                if opened is not None:
                    if len(stack) >= MAX_DEPTH:
                        raise _Stop(_line(event), f"nested more than {MAX_DEPTH} levels deep")
                    stack.append(opened)
                    continue
                value = self.scalar(event, path, events)
            if not stack:
                root = value
            elif isinstance(stack[-1].value, list):
                stack[-1].value.append(value)
            else:
                assert stack[-1].key is not None
                stack[-1].value[stack[-1].key], stack[-1].key = value, None
        return root

    def key(self, event: yaml.Event, parent: _Open, events: Iterator[yaml.Event]) -> str | None:
        """The key of the next entry; None when it is refused (its value is skipped)."""
        line = _line(event)
        assert isinstance(parent.value, dict)
        if isinstance(event, yaml.ScalarEvent):
            tag = self.tag(event, yaml.ScalarNode, event.value)
            if tag == _MERGE:
                self.refuse(line, f"{_where(parent.path)}: merge keys (<<) are not supported", events)
                return None
            if tag in _SCALAR_TAGS:
                key = str(event.value)  # as written: `1.5: x` names "1.5", not the float
                at = parent.path + (key,)
                if key in parent.value:
                    self.refuse(line, f"{dotted(at)}: duplicate key (first at line {self.lines[at]})", events)
                    return None
                self.lines[at] = line
                return key
        _skip(event, events)
        self.refuse(line, f"{_where(parent.path)}: keys must be plain strings", events)
        return None

    def refuse(self, line: int, problem: str, events: Iterator[yaml.Event]) -> None:
        self.problems.append((line, problem))
        _skip(next(events), events)  # the refused key's value

    def collection(self, event: yaml.Event, path: Path) -> _Open | None:
        if isinstance(event, yaml.MappingStartEvent) and self.tag(event, yaml.MappingNode, None) == _MAP:
            return _Open(path, {})
        if isinstance(event, yaml.SequenceStartEvent) and self.tag(event, yaml.SequenceNode, None) == _SEQ:
            return _Open(path, [])
        return None

    def scalar(self, event: yaml.Event, path: Path, events: Iterator[yaml.Event]) -> Any:
        """A scalar's value; anything else that is not a plain mapping or list is refused (and skipped)."""
        line = _line(event)
        if isinstance(event, yaml.AliasEvent):
            self.problems.append((line, f"{_where(path)}: anchors and aliases (*name) are not supported"))
            return None
        if isinstance(event, yaml.ScalarEvent):
            tag = self.tag(event, yaml.ScalarNode, event.value)
            if tag == _STR:
                return event.value
            if tag in _SCALAR_TAGS:
                return self.constructor.construct_object(yaml.ScalarNode(tag, event.value, style=event.style))
        else:
            tag = str(getattr(event, "tag", ""))  # a collection's own tag (!!set, !custom, ...)
            _skip(event, events)
        hint = " (quote the value)" if tag == "tag:yaml.org,2002:timestamp" else ""
        self.problems.append((line, f"{_where(path)}: the YAML tag {tag} is not allowed in a policy{hint}"))
        return None

    def tag(self, event: Any, kind: type[yaml.Node], value: str | None) -> str:
        """The node's tag, as the composer would resolve it."""
        if event.tag is None or event.tag == "!":
            return str(self.resolver.resolve(kind, value, event.implicit))  # type: ignore[no-untyped-call]
        return str(event.tag)


def _where(path: Path) -> str:
    return dotted(path) or "(top level)"


def _child(parent: _Open | None) -> Path:
    if parent is None:
        return ()
    if isinstance(parent.value, list):
        return parent.path + (len(parent.value),)
    assert parent.key is not None
    return parent.path + (parent.key,)


def _skip(event: yaml.Event, events: Iterator[yaml.Event]) -> None:
    """Consume the rest of the node ``event`` starts (a whole mapping or list, however deep)."""
    depth = 1 if isinstance(event, _STARTS) else 0
    while depth:
        nxt = next(events)
        depth += 1 if isinstance(nxt, _STARTS) else -1 if isinstance(nxt, _ENDS) else 0


def parse(file: str, text: str) -> tuple[Document | None, list[str]]:
    """One file -> its document, or the problems found, each ``file:line: what``."""
    reader = _Reader()
    try:
        data = reader.read(yaml.parse(text, Loader=_LOADER))
    except _Stop as e:
        return None, [f"{file}:{e.line}: {e.message}"]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return None, [f"{file}:{line}: invalid YAML: {getattr(e, 'problem', None) or e}"]
    if reader.problems:
        return None, [f"{file}:{line}: {what}" for line, what in reader.problems]
    return Document(file, data, reader.lines), []
