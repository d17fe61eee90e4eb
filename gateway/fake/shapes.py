"""Checking a JSON value against an SDK's request types strictly (pure): the fake refuses what the real API
would, and tests check what the gateway sends.

The official SDKs type requests as ``TypedDict``s (``anthropic.types.MessageCreateParams``); Python does
not check them at run time, and pydantic ignores unknown keys. ``problems`` walks the value and the type
together and reports every key the type does not have, every required key missing, every value of the
wrong kind and every literal out of its set::

    problems({"model": "m", "max_tokens": 5, "messages": [], "temperature": 0.5}, MessageCreateParamsNonStreaming)
    # ['.temperature: not a field of MessageCreateParamsNonStreaming']
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, get_args, get_origin

_SEQUENCES = frozenset({"Iterable", "Sequence", "SequenceNotStr", "List", "list"})
_PRIMITIVES: dict[type, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def problems(value: Any, hint: Any, path: str = "") -> list[str]:
    """Every way ``value`` (parsed JSON) is not a ``hint``; empty when it is one."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return problems(value, get_args(hint)[0], path)
    if origin is typing.Union or origin is types.UnionType:
        chosen = _discriminated(value, get_args(hint))
        if chosen is not None:  # the branch the value names ("type": "image"): its problems say the most
            return problems(value, chosen, path)
        near: list[list[str]] = []
        for option in get_args(hint):
            wrong = problems(value, option, path)
            if not wrong:
                return []
            if not any(w.startswith(f"{path}: ") for w in wrong):  # right kind of value, wrong inside
                near.append(wrong)
        if near:
            return min(near, key=len)
        return [f"{path}: {_short(value)} matches none of {_name(hint)}"]
    if origin is typing.Literal:
        return [] if value in get_args(hint) else [f"{path}: {value!r} is not one of {list(get_args(hint))}"]
    if hint is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if hint is object or hint is Any:
        return []
    if _is_typed_dict(hint):
        return _typed_dict(value, hint, path)
    if origin is not None:
        return _generic(value, origin, get_args(hint), path)
    if isinstance(hint, type):
        if hint in _PRIMITIVES:
            ok = isinstance(value, _PRIMITIVES[hint]) and (hint is bool or not isinstance(value, bool))
            return [] if ok else [f"{path}: expected {hint.__name__}, got {_short(value)}"]
        return [] if isinstance(value, str | bytes) else [f"{path}: expected {hint.__name__}"]  # files, paths
    return []


def _discriminated(value: Any, options: tuple[Any, ...]) -> Any:
    """The one TypedDict among ``options`` whose ``type`` (or ``role``) literal is the value's, if exactly one."""
    if not isinstance(value, dict):
        return None
    plain = [get_args(o)[0] if get_origin(o) is typing.Annotated else o for o in options if o is not type(None)]
    if not all(_is_typed_dict(o) for o in plain):  # a free-form object is an option too: no discriminator
        return None
    for key in ("type", "role"):
        if key not in value:
            continue
        matching = []
        for option in options:
            option = get_args(option)[0] if get_origin(option) is typing.Annotated else option
            field = typing.get_type_hints(option, include_extras=True).get(key) if _is_typed_dict(option) else None
            field = _unwrap(field) if field is not None else None
            if get_origin(field) is typing.Literal and value[key] in get_args(field):
                matching.append(option)
        if len(matching) == 1:
            return matching[0]
    return None


def _is_typed_dict(hint: Any) -> bool:
    """typing's TypedDicts and typing_extensions' (which the SDKs use, and ``typing.is_typeddict`` misses)."""
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__")


def _typed_dict(value: Any, hint: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({hint.__name__}), got {_short(value)}"]
    fields = typing.get_type_hints(hint, include_extras=True)
    open_ended = (getattr(hint, "__pydantic_config__", None) or {}).get("extra") == "allow"  # e.g. a JSON schema
    unknown = [] if open_ended else [key for key in value if key not in fields]
    found = [f"{path}.{key}: not a field of {hint.__name__}" for key in unknown]
    found += [f"{path}.{key}: required by {hint.__name__}" for key in hint.__required_keys__ if key not in value]
    for key, item in value.items():
        if key in fields:
            found += problems(item, _unwrap(fields[key]), f"{path}.{key}")
    return found


def _unwrap(hint: Any) -> Any:
    """``Required[X]``/``NotRequired[X]``/``ReadOnly[X]`` -> X."""
    while getattr(get_origin(hint), "_name", None) in ("Required", "NotRequired", "ReadOnly") or (
        get_origin(hint) is not None and str(get_origin(hint)).split(".")[-1] in ("Required", "NotRequired", "ReadOnly")
    ):
        hint = get_args(hint)[0]
    return hint


def _generic(value: Any, origin: Any, args: tuple[Any, ...], path: str) -> list[str]:
    if origin in (dict, collections.abc.Mapping) or getattr(origin, "__name__", "") in ("Dict", "Mapping"):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {_short(value)}"]
        return [p for key, item in value.items() for p in problems(item, args[1], f"{path}.{key}")] if args else []
    if getattr(origin, "__name__", "") in _SEQUENCES or origin in (list, collections.abc.Iterable):
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {_short(value)}"]
        return [p for n, item in enumerate(value) for p in problems(item, args[0], f"{path}[{n}]")] if args else []
    return []


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")[:80]


def _short(value: Any) -> str:
    return repr(value)[:60]
