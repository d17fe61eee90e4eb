"""Validate a config document and build ``Settings``, collecting every error rather than the first.

Each error names the key path, e.g. ``providers.openai-main.models.gpt-4o.limits.rpm: expected
a positive integer, got -5``; unknown keys are errors so a typo never silently does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, cast

from gateway import catalog
from gateway.config.budgets import budget_caps, budgets
from gateway.config.credentials import AWS_KEYS, aws_credentials, credential, secret_from
from gateway.config.model import (
    CAPABILITIES,
    POLICY_MAX_BYTES,
    Account,
    CircuitSettings,
    Deployment,
    Limits,
    LimitSettings,
    ObservabilitySettings,
    Price,
    ProviderFacts,
    ServerSettings,
    Settings,
    Timeouts,
    TracingSettings,
    VirtualKey,
)
from gateway.config.reader import (
    _NAME,
    _SHA256,
    _bool,
    _fraction,
    _kind,
    _nonneg_float,
    _port,
    _pos_float,
    _pos_int,
    _Reader,
    _str,
    _str_list,
)

# Each server setting: its check and what the error says it wants.
_SERVER_FIELDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "host": (_str, "a host name or address"),
    "port": (_port, "a port 0-65535"),
    "workers": (_pos_int, "a positive integer"),
    "max_body_bytes": (_pos_int, "a positive integer"),
    "shutdown_grace_seconds": (_nonneg_float, "seconds >= 0"),
    "drain_delay_seconds": (_nonneg_float, "seconds >= 0"),
    "access_log": (_bool, "true or false"),
    "access_log_queue": (_pos_int, "a positive integer"),
    "max_connections_per_account": (_pos_int, "a positive integer"),
    "max_header_bytes": (_pos_int, "a positive integer"),
    "header_timeout_seconds": (_pos_float, "seconds > 0"),
    "body_timeout_seconds": (_pos_float, "seconds > 0"),
    "keepalive_timeout_seconds": (_pos_float, "seconds > 0"),
    "max_connections": (_pos_int, "a positive integer"),
    "max_response_bytes": (_pos_int, "a positive integer"),
    "max_response_header_bytes": (_pos_int, "a positive integer"),
    "max_stream_event_bytes": (_pos_int, "a positive integer"),
    "max_stream_bytes": (_pos_int, "a positive integer"),
}


def _server(r: _Reader, raw: Any) -> ServerSettings:
    d = ServerSettings()
    m = r.mapping(raw, "server", frozenset(_SERVER_FIELDS) | {"timeouts"})
    p = "server.timeouts"
    t = r.mapping(m.get("timeouts"), p, frozenset(f.name for f in fields(Timeouts)))
    dt = Timeouts()
    timeouts = Timeouts(
        **{f.name: r.get(t, p, f.name, _pos_float, "seconds > 0", getattr(dt, f.name)) for f in fields(Timeouts)}
    )
    values = {
        name: r.get(m, "server", name, check, want, getattr(d, name)) for name, (check, want) in _SERVER_FIELDS.items()
    }
    return ServerSettings(timeouts=timeouts, **values)


def _limits(r: _Reader, raw: Any, path: str) -> Limits:
    m = r.mapping(raw, path, frozenset({"rpm", "tpm"}))
    return Limits(
        rpm=r.get(m, path, "rpm", _pos_int, "a positive integer", None),
        tpm=r.get(m, path, "tpm", _pos_int, "a positive integer", None),
    )


_MODEL_KEYS = frozenset(
    {"upstream_model", "mode", "limits", "price", "context_window", "max_output_tokens", "capabilities"}
)


def _deployment(r: _Reader, account: str, kind: str, model: str, raw: Any, path: str) -> Deployment:
    m = r.mapping(raw, path, _MODEL_KEYS)
    upstream_model = r.get(m, path, "upstream_model", _str, "a string", model)
    info = catalog.lookup(kind, upstream_model)
    mode = r.get(
        m,
        path,
        "mode",
        lambda v: v if v in ("chat", "embedding") else None,
        "chat or embedding",
        info.mode if info else "chat",
    )
    price = info.price if info else None
    if "price" in m:
        at, per_mtok = f"{path}.price", "USD per million tokens"
        pm = r.mapping(
            m["price"], at, frozenset({f"{n}_per_mtok" for n in ("input", "output", "cache_read", "cache_write")})
        )
        pin = r.required(pm, at, "input_per_mtok", _nonneg_float, per_mtok)
        pout = r.get(pm, at, "output_per_mtok", _nonneg_float, per_mtok, 0.0)
        read: float | None = r.get(pm, at, "cache_read_per_mtok", _nonneg_float, per_mtok, None)
        write: float | None = r.get(pm, at, "cache_write_per_mtok", _nonneg_float, per_mtok, None)
        price = Price(
            input=(pin or 0.0) / 1e6,
            output=pout / 1e6,
            cache_read=None if read is None else read / 1e6,
            cache_write=None if write is None else write / 1e6,
        )
    caps = info.capabilities if info else frozenset({"streaming"})
    if "capabilities" in m:
        listed: list[str] = r.get(m, path, "capabilities", _str_list, "a list of capability names", [])
        unknown = sorted(set(listed) - CAPABILITIES)
        if unknown:
            r.error(f"{path}.capabilities", f"unknown capabilities {unknown} (known: {sorted(CAPABILITIES)})")
        caps = frozenset(listed) & CAPABILITIES
    return Deployment(
        account=account,
        model=model,
        upstream_model=upstream_model,
        mode=cast(Any, mode),
        limits=_limits(r, m.get("limits"), f"{path}.limits"),
        price=price,
        context_window=r.get(
            m, path, "context_window", _pos_int, "a positive integer", info.context_window if info else None
        ),
        max_output_tokens=r.get(
            m,
            path,
            "max_output_tokens",
            _pos_int,
            "a positive integer",
            info.max_output_tokens if info else None,
        ),
        capabilities=caps,
    )


_ACCOUNT_KEYS = frozenset({"kind", "base_url", "api_key_env", "api_key_file", "api_version", "limits", "models"})


def _account(r: _Reader, name: str, raw: Any) -> Account | None:
    path = f"providers.{name}"
    if not _NAME.match(name) or "/" in name:
        r.error(path, "provider names use letters, digits, '.', '_' and '-'")
    m = r.mapping(raw, path, _ACCOUNT_KEYS | AWS_KEYS)
    kind = r.required(m, path, "kind", _str, f"one of {sorted(r.registry)}")
    if kind is None:
        return None
    provider = r.registry.get(kind)
    if provider is None:
        r.error(f"{path}.kind", f"unknown provider kind {kind!r} (known: {', '.join(sorted(r.registry))})")
        return None
    region, aws = None, None
    if provider.aws:
        default_region = r.env.get("AWS_REGION") or r.env.get("AWS_DEFAULT_REGION") or ""
        region = r.get(m, path, "region", _str, "an AWS region such as us-east-1", default_region) or None
        if region is None:
            r.error(f"{path}.region", f"required for kind {kind} (or set AWS_REGION)")
        aws = aws_credentials(r, m, path)
    else:
        for key in sorted(AWS_KEYS & set(m)):
            r.error(f"{path}.{key}", f"only accounts of an AWS service (kind bedrock) take {key}")
    default_url = (provider.default_base_url or "").replace("{region}", region or "")
    base_url = r.get(m, path, "base_url", _str, "a URL", default_url)
    if not base_url and provider.default_base_url is None:  # "": the kind needs none (litellm knows)
        r.error(f"{path}.base_url", f"required for kind {kind}")
    elif base_url and not base_url.startswith(("http://", "https://")):
        r.error(f"{path}.base_url", f"expected an http:// or https:// URL, got {base_url!r}")
    api_version = r.get(m, path, "api_version", _str, "a string", provider.default_api_version)
    if provider.needs_api_version and not api_version:
        r.error(f"{path}.api_version", f"required for kind {kind}")
    api_key = credential(r, m, path, provider.needs_credential)
    models = r.mapping(m.get("models"), f"{path}.models", frozenset(m.get("models") or {}))
    if not models:
        r.error(f"{path}.models", "declare at least one model")
    deployments = tuple(
        _deployment(r, name, kind, str(model), spec, f"{path}.models.{model}") for model, spec in models.items()
    )
    for d in deployments:
        if d.mode == "embedding" and "embeddings" not in provider.endpoints:
            r.error(f"{path}.models.{d.model}.mode", f"kind {kind} has no embeddings API")
    return Account(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        api_version=api_version,
        limits=_limits(r, m.get("limits"), f"{path}.limits"),
        deployments=deployments,
        region=region,
        aws=aws,
    )


def _keys(r: _Reader, raw: Any) -> tuple[VirtualKey, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.error("keys", f"expected a list, got {_kind(raw)}")
        return ()
    keys: list[VirtualKey] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"keys[{i}]"
        m = r.mapping(item, path, _KEY_FIELDS)
        name = r.required(m, path, "name", _str, "a string")
        digest = r.required(m, path, "key_sha256", _str, "the sha256 hex digest of the key (gateway hash-key)")
        if digest is not None and not _SHA256.match(digest.lower()):
            r.error(f"{path}.key_sha256", "expected 64 hex characters (use `gateway hash-key KEY`)")
            digest = None
        if digest is not None and digest.lower() in seen:
            r.error(f"{path}.key_sha256", "the same key is declared twice")
        models = r.get(m, path, "models", _str_list, "a list of model names or '*'", ["*"])
        tier = r.get(m, path, "tier", _str, "a string", "standard")
        if name is not None and digest is not None:
            seen.add(digest.lower())
            keys.append(
                VirtualKey(
                    name=name,
                    key_sha256=digest.lower(),
                    tier=tier,
                    models=frozenset(models),
                    limits=_limits(r, m.get("limits"), f"{path}.limits"),
                    user_limits=_limits(r, m.get("user_limits"), f"{path}.user_limits"),
                    trusted=r.get(m, path, "trusted", _bool, "true or false", False),
                    budget=budget_caps(r, m.get("budget"), f"{path}.budget"),
                    user_budget=budget_caps(r, m.get("user_budget"), f"{path}.user_budget"),
                )
            )
    return tuple(keys)


_KEY_FIELDS = frozenset(
    {"name", "key_sha256", "tier", "models", "limits", "user_limits", "trusted", "budget", "user_budget"}
)


def _limit_settings(r: _Reader, raw: Any) -> LimitSettings:
    d, p = LimitSettings(), "limits"
    m = r.mapping(
        raw,
        p,
        frozenset(f.name for f in fields(LimitSettings)),
    )
    return LimitSettings(
        queue_timeout_seconds=r.get(
            m, p, "queue_timeout_seconds", _nonneg_float, "seconds >= 0", d.queue_timeout_seconds
        ),
        default_output_tokens=r.get(
            m, p, "default_output_tokens", _pos_int, "a positive integer", d.default_output_tokens
        ),
        redis_deadline_ms=r.get(m, p, "redis_deadline_ms", _pos_float, "milliseconds > 0", d.redis_deadline_ms),
        fail_mode=r.get(
            m, p, "fail_mode", lambda v: v if v in ("closed", "open") else None, "closed or open", d.fail_mode
        ),
        key_prefix=r.get(
            m,
            p,
            "key_prefix",
            lambda v: v if isinstance(v, str) and _NAME.match(v) else None,
            "letters, digits, '.', '_' or '-'",
            d.key_prefix,
        ),
        max_n=r.get(m, p, "max_n", _pos_int, "a positive integer", d.max_n),
        max_output_tokens=r.get(m, p, "max_output_tokens", _pos_int, "a positive integer", d.max_output_tokens),
        max_retry_after_seconds=r.get(
            m, p, "max_retry_after_seconds", _pos_float, "seconds > 0", d.max_retry_after_seconds
        ),
    )


def _circuit(r: _Reader, raw: Any) -> CircuitSettings:
    d, p = CircuitSettings(), "circuit"
    m = r.mapping(raw, p, frozenset(f.name for f in fields(CircuitSettings)))
    return CircuitSettings(
        failure_threshold=r.get(m, p, "failure_threshold", _pos_int, "a positive integer", d.failure_threshold),
        error_rate_threshold=r.get(
            m, p, "error_rate_threshold", _fraction, "a fraction in (0, 1]", d.error_rate_threshold
        ),
        min_requests=r.get(m, p, "min_requests", _pos_int, "a positive integer", d.min_requests),
        window_seconds=r.get(m, p, "window_seconds", _pos_float, "seconds > 0", d.window_seconds),
        open_seconds=r.get(m, p, "open_seconds", _pos_float, "seconds > 0", d.open_seconds),
        half_open_probes=r.get(m, p, "half_open_probes", _pos_int, "a positive integer", d.half_open_probes),
        ewma_alpha=r.get(m, p, "ewma_alpha", _fraction, "a fraction in (0, 1]", d.ewma_alpha),
    )


def _ratio(v: Any) -> float | None:
    """A number in [0, 1]."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
    return float(v) if ok else None


def _observability(r: _Reader, raw: Any) -> ObservabilitySettings:
    d, p = ObservabilitySettings(), "observability"
    m = r.mapping(raw, p, frozenset({"metrics", "tracing"}))
    pm = f"{p}.metrics"
    metrics = r.mapping(m.get("metrics"), pm, frozenset({"token_env", "token_file", "headroom_interval_seconds"}))
    pt, dt = f"{p}.tracing", TracingSettings()
    tracing = r.mapping(m.get("tracing"), pt, frozenset({"endpoint", "sample_ratio", "service_name"}))
    endpoint = r.get(tracing, pt, "endpoint", _str, "an http:// or https:// URL", dt.endpoint)
    if endpoint and not endpoint.startswith(("http://", "https://")):
        r.error(f"{pt}.endpoint", f"expected an http:// or https:// URL (OTLP over HTTP), got {endpoint!r}")
    return ObservabilitySettings(
        metrics_token=secret_from(r, metrics, pm, "token"),
        headroom_interval_seconds=r.get(
            metrics, pm, "headroom_interval_seconds", _pos_float, "seconds > 0", d.headroom_interval_seconds
        ),
        tracing=TracingSettings(
            endpoint=endpoint,
            sample_ratio=r.get(tracing, pt, "sample_ratio", _ratio, "a number from 0 to 1", dt.sample_ratio),
            service_name=r.get(tracing, pt, "service_name", _str, "a string", dt.service_name) or dt.service_name,
        ),
    )


TOP_LEVEL = frozenset(
    {"server", "state", "providers", "keys", "admin", "policies", "limits", "circuit", "demo", "observability"}
    | {"budgets"}
)


def build_settings(
    doc: Any, *, source: str, env: Mapping[str, str], base_dir: str, registry: Mapping[str, ProviderFacts]
) -> tuple[Settings | None, list[str]]:
    """Validate an interpolated document; returns the settings or every error found."""
    r = _Reader(env, base_dir, registry)
    top = r.mapping(doc, "(top level)", TOP_LEVEL)
    server = _server(r, top.get("server"))
    state = r.mapping(top.get("state"), "state", frozenset({"redis_url", "ready_requires_redis"}))
    redis_url = r.get(state, "state", "redis_url", _str, "a redis:// or rediss:// URL", "")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        r.error("state.redis_url", f"expected a redis://, rediss:// or unix:// URL, got {redis_url!r}")
    providers = r.mapping(top.get("providers"), "providers", frozenset(top.get("providers") or {}))
    accounts = tuple(a for name, raw in providers.items() if (a := _account(r, str(name), raw)) is not None)
    if not accounts:
        r.error("providers", "declare at least one provider account")
    admin = r.mapping(top.get("admin"), "admin", frozenset({"key_sha256"}))
    admin_digest = r.get(admin, "admin", "key_sha256", _str, "a sha256 hex digest", "") or None
    if admin_digest is not None and not _SHA256.match(admin_digest.lower()):
        r.error("admin.key_sha256", "expected 64 hex characters (use `gateway hash-key KEY`)")
    policies = r.mapping(top.get("policies"), "policies", frozenset({"dir", "max_bytes"}))
    policy_dir = r.get(policies, "policies", "dir", _str, "a directory", "policies")
    policy_max_bytes = r.get(policies, "policies", "max_bytes", _pos_int, "a positive integer", POLICY_MAX_BYTES)
    demo = r.get(top, "(top level)", "demo", _bool, "true or false", False)
    settings = Settings(
        source=source,
        server=server,
        redis_url=redis_url,
        accounts=accounts,
        keys=(keys := _keys(r, top.get("keys"))),
        admin_key_sha256=admin_digest.lower() if admin_digest else None,
        policy_dir=os.path.join(base_dir, policy_dir) if policy_dir else "",
        policy_max_bytes=policy_max_bytes,
        limits=_limit_settings(r, top.get("limits")),
        ready_requires_redis=r.get(state, "state", "ready_requires_redis", _bool, "true or false", False),
        circuit=_circuit(r, top.get("circuit")),
        demo=demo,
        budgets=budgets(r, top.get("budgets"), accounts, keys),
        observability=_observability(r, top.get("observability")),
    )
    return (None if r.errors else settings), r.errors
