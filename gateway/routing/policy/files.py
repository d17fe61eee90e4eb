"""The policy directory's files: which they are, reading them within ``policies.max_bytes``, and the version
that names their content (what ``x-gateway-policy-version`` shows)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def policy_files(directory: str) -> list[str]:
    """The policy files, sorted by name; editor and ConfigMap dot-files are skipped."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if n.endswith((".yaml", ".yml")) and not n.startswith("."))


def policy_version(files: Iterable[tuple[str, bytes]]) -> str:
    """
    >>> policy_version([])  # the empty policy
    'e3b0c44298fc'
    """
    h = hashlib.sha256()
    for name, data in sorted(files):
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:12]


def read_policy_files(directory: str, shown: str, max_bytes: int) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Every policy file's (name, bytes), read together up to ``max_bytes`` and never further, whatever a
    file's size; and the problems, ``<shown>/<name>:1: what``."""
    files: list[tuple[str, bytes]] = []
    problems: list[str] = []
    budget = max_bytes
    for name in policy_files(directory):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                data = f.read(budget + 1)
        except OSError as e:
            problems.append(f"{os.path.join(shown, name)}:1: cannot read: {e.strerror}")
            continue
        if len(data) > budget:
            over = f"the policy files together are over {max_bytes} bytes (policies.max_bytes)"
            problems.append(f"{os.path.join(shown, name)}:1: {over}")
            break
        budget -= len(data)
        files.append((name, data))
    return files, problems
