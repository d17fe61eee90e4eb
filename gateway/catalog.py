"""Known models' prices, context windows and capabilities, read from the data file litellm ships.

litellm itself is never imported here (it takes seconds and hundreds of MB): ``find_spec`` only
locates the package directory, and the JSON is read once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import orjson

from gateway.config.model import Price

_FILE = "model_prices_and_context_window_backup.json"
# Our provider kind -> litellm's key prefix and provider name in that file.
_PREFIX = {
    "azure": "azure",
    "groq": "groq",
    "gemini": "gemini",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
}


@dataclass(frozen=True)
class ModelInfo:
    mode: Literal["chat", "embedding"]
    context_window: int | None
    max_output_tokens: int | None
    price: Price | None
    capabilities: frozenset[str]


def litellm_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


@functools.cache
def _entries() -> dict[str, Any]:
    base = litellm_dir()
    if base is None:
        return {}
    try:
        with open(os.path.join(base, _FILE), "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def to_model_info(entry: Mapping[str, Any]) -> ModelInfo:
    """Pure: one catalog entry -> what the gateway uses of it."""
    caps = {"streaming"}
    for flag, cap in (
        ("supports_function_calling", "tools"),
        ("supports_vision", "vision"),
        ("supports_response_schema", "json_schema"),
    ):
        if entry.get(flag):
            caps.add(cap)
    mode: Literal["chat", "embedding"] = "embedding" if entry.get("mode") == "embedding" else "chat"
    if mode == "embedding":
        caps = set()
    pin, pout = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    read, write = entry.get("cache_read_input_token_cost"), entry.get("cache_creation_input_token_cost")
    price = None
    if isinstance(pin, int | float):
        price = Price(
            input=float(pin),
            output=float(pout or 0.0),
            cache_read=float(read) if isinstance(read, int | float) else None,
            cache_write=float(write) if isinstance(write, int | float) else None,
        )
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    out = entry.get("max_output_tokens")
    return ModelInfo(
        mode=mode,
        context_window=int(window) if isinstance(window, int | float) else None,
        max_output_tokens=int(out) if isinstance(out, int | float) else None,
        price=price,
        capabilities=frozenset(caps),
    )


def entry(kind: str, model: str) -> Mapping[str, Any] | None:
    """The catalog's own entry for a model, read-only: the adapters that must decide a wire detail per model
    (Anthropic's sampling parameters, thinking and structured output) read its ``supports_*`` flags."""
    entries = _entries()
    prefix = _PREFIX.get(kind)
    for key in ((f"{prefix}/{model}",) if prefix else ()) + (model,):
        found = entries.get(key)
        if isinstance(found, dict):
            return MappingProxyType(found)
    if kind == "litellm" and "/" in model:  # litellm's "cohere/command-r-08-2024" is the file's "command-r-08-2024"
        provider, _, name = model.partition("/")
        found = entries.get(name)
        if isinstance(found, dict) and str(found.get("litellm_provider", "")).startswith(provider):
            return MappingProxyType(found)
    return None


def lookup(kind: str, model: str) -> ModelInfo | None:
    found = entry(kind, model)
    return None if found is None else to_model_info(found)
