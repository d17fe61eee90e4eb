"""Configuration: where it comes from (``source``), what it means (``model``), how it is checked."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import orjson

from gateway.config.defaults import DEMO_UPSTREAM_KEY, DEMO_UPSTREAM_KEY_ENV, default_document
from gateway.config.model import (
    Account,
    Deployment,
    Limits,
    ProviderFacts,
    Secret,
    ServerSettings,
    Settings,
    Timeouts,
    VirtualKey,
)
from gateway.config.parse import build_settings
from gateway.config.source import ConfigError, interpolate, read_yaml

CONFIG_ENV = "GATEWAY_CONFIG"
FLAGS_ENV = "GATEWAY_SERVE_FLAGS"  # `gateway serve`'s --host/--port/--workers, handed to worker processes

__all__ = [
    "Account",
    "ConfigError",
    "Deployment",
    "Limits",
    "Secret",
    "ServerSettings",
    "Settings",
    "Timeouts",
    "VirtualKey",
    "config_path",
    "load_settings",
    "with_flags",
]


def config_path(cli_path: str | None, env: Mapping[str, str]) -> str | None:
    return cli_path or env.get(CONFIG_ENV) or None


def load_settings(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None, *, kinds: Mapping[str, ProviderFacts]
) -> Settings:
    """Load and validate against the provider ``kinds`` there are (``gateway.providers.REGISTRY``); raises
    ConfigError listing every problem, each prefixed with the file."""
    env = dict(os.environ if env is None else env)
    if path is None:
        source, base_dir = "<built-in default>", os.getcwd()
        doc = default_document(env, frozenset(kinds))
        if doc["demo"]:
            env.setdefault(DEMO_UPSTREAM_KEY_ENV, DEMO_UPSTREAM_KEY)
    else:
        source = os.fspath(path)  # a str field: the compiled Settings checks its fields' types
        base_dir = os.path.dirname(os.path.abspath(source))
        doc = read_yaml(source)
    errors: list[str] = []
    doc = interpolate(doc, env, "", errors)
    settings, more = build_settings(doc, source=source, env=env, base_dir=base_dir, registry=kinds)
    errors += more
    if errors or settings is None:
        raise ConfigError([f"{source}: {e}" for e in errors])
    return settings


def with_flags(settings: Settings, env: Mapping[str, str]) -> Settings:
    """The settings with ``gateway serve``'s server flags (JSON in GATEWAY_SERVE_FLAGS) applied: flags win
    over the file, as they do for uvicorn."""
    flags = orjson.loads(env[FLAGS_ENV]) if env.get(FLAGS_ENV) else {}
    if not flags:
        return settings
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, **flags))
