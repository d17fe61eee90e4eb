"""How chains nest: the graph of chains naming chains, walked once for its cycles and each chain's depth."""

from __future__ import annotations

from collections.abc import Mapping


def nesting(graph: Mapping[str, list[str]]) -> tuple[list[list[str]], dict[str, int]]:
    """Depth-first, without recursion (a policy may chain thousands of chains): every cycle found, as
    the path that closes it ([a, b, a]), and each chain's nesting depth (a cycle counts once).

    >>> nesting({"a": ["b"], "b": ["a", "c"], "c": []})
    ([['a', 'b', 'a']], {'c': 1, 'b': 2, 'a': 3})
    """
    found: list[list[str]] = []
    depth: dict[str, int] = {}
    for start in graph:
        if start in depth:
            continue
        stack, pending, on_stack = [start], [iter(graph[start])], {start}
        while stack:
            nxt = next(pending[-1], None)
            if nxt is None:
                node = stack.pop()
                pending.pop()
                on_stack.discard(node)
                depth[node] = 1 + max((depth.get(n, 0) for n in graph[node]), default=0)
            elif nxt in on_stack:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt in graph and nxt not in depth:
                stack.append(nxt)
                pending.append(iter(graph[nxt]))
                on_stack.add(nxt)
    return found, depth
