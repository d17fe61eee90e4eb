"""The Dockerfile is clean under hadolint and the build context holds only what the image needs."""

from __future__ import annotations

import fnmatch

from deploy.tools import ROOT, run, tool


def test_hadolint_finds_nothing() -> None:
    assert run(tool("hadolint"), "--failure-threshold", "info", "Dockerfile") == ""


def included(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule: the last pattern that matches the path (or a parent) decides."""
    keep = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatch(p, glob) or fnmatch.fnmatch(p, glob.removeprefix("**/")) for p in prefixes):
            keep = negate
    return keep


def test_the_build_context_is_an_allowlist() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for needed in ["gateway/app.py", "gateway/state/admit_v7.lua", "pyproject.toml", "README.md", "requirements.lock"]:
        assert included(needed, patterns), needed
    for secret_or_bulk in [
        ".venv/bin/python",
        ".git/config",
        "tests/harness.py",
        "gateway/__pycache__/app.cpython-311.pyc",
        ".env",
    ]:
        assert not included(secret_or_bulk, patterns), secret_or_bulk
