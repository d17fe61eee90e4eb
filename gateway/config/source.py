"""Reading a config file: safe YAML plus ``${VAR}`` / ``${VAR:-default}`` interpolation.

Interpolation runs on string scalars after parsing, so an environment value can never add
keys or change the document's structure; a scalar that is exactly one ``${...}`` is re-typed
as a YAML scalar, so ``port: ${PORT:-8080}`` gives the integer 8080.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """Every problem found in a configuration, one line each: ``file: key.path: what``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([f"{path}{where}: invalid YAML: {problem}"]) from None


def interpolate(value: Any, env: Mapping[str, str], path: str, errors: list[str]) -> Any:
    """Replace ``${VAR}`` in every string scalar; unset variables without a default are errors."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        errors.append(f"{path}: environment variable {name} is not set")
        return ""

    whole = _VAR.fullmatch(value) is not None
    result = _VAR.sub(replace, value)
    if whole:
        typed = yaml.safe_load(result) if result.strip() else None
        if isinstance(typed, str | int | float | bool) or typed is None:
            return typed
    return result
