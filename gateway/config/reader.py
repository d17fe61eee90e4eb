"""Reading one config document: every error collected with its key path, and the scalar checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from gateway.config.model import ProviderFacts

T = TypeVar("T")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Reader:
    def __init__(self, env: Mapping[str, str], base_dir: str, registry: Mapping[str, ProviderFacts]) -> None:
        self.errors: list[str] = []
        self.registry = registry
        self.env = env
        self.base_dir = base_dir

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: frozenset[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.error(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def get(self, m: dict[str, Any], path: str, key: str, check: Callable[[Any], T | None], want: str, default: T) -> T:
        if key not in m or m[key] is None:
            return default
        value = check(m[key])
        if value is None:
            self.error(f"{path}.{key}", f"expected {want}, got {m[key]!r}")
            return default
        return value

    def required(self, m: dict[str, Any], path: str, key: str, check: Callable[[Any], T | None], want: str) -> T | None:
        if key not in m or m[key] is None:
            self.error(f"{path}.{key}", f"required ({want})")
            return None
        value = check(m[key])
        if value is None:
            self.error(f"{path}.{key}", f"expected {want}, got {m[key]!r}")
        return value


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _pos_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _pos_float(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
    return float(v) if ok else None


def _fraction(v: Any) -> float | None:
    """A number in (0, 1]."""
    value = _pos_float(v)
    return value if value is not None and value <= 1 else None


def _nonneg_float(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
    return float(v) if ok else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _port(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 65536 else None


def _str_list(v: Any) -> list[str] | None:
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
