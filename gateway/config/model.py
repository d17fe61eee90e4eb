"""The validated configuration: frozen dataclasses, built once at start by ``parse``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.types import Mode

POLICY_MAX_BYTES = 1024 * 1024  # all policy files together; a larger directory is refused

# Capabilities a request may require and a deployment may declare.
CAPABILITIES = frozenset({"tools", "vision", "json_schema", "streaming", "logprobs"})


class Secret:
    """A credential. Its repr and str never show the value, so it cannot leak into logs by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:  # not ``__str__ = __repr__``: a compiled (native) class cannot alias its methods
        return self.__repr__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ProviderFacts(Protocol):
    """What reading a config must know of a provider kind. ``gateway.providers.Provider`` has it; the
    registry is passed in by the caller, so configuration never imports the providers."""

    @property
    def kind(self) -> str: ...
    @property
    def default_base_url(self) -> str | None: ...
    @property
    def needs_credential(self) -> bool: ...
    @property
    def needs_api_version(self) -> bool: ...
    @property
    def default_api_version(self) -> str | None: ...
    @property
    def endpoints(self) -> frozenset[str]: ...  # of "chat" and "embeddings"
    @property
    def aws(self) -> bool: ...  # an AWS service: region and AWS credentials per account


@dataclass(frozen=True)
class Timeouts:
    """Seconds, for calls to providers."""

    connect: float = 5.0
    first_byte: float = 60.0
    total: float = 600.0
    stream_idle: float = 60.0
    pool: float = 5.0  # waiting for a free connection in the account's pool (not the provider's fault)


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    timeouts: Timeouts = field(default_factory=Timeouts)
    shutdown_grace_seconds: float = 30.0
    # Time between SIGTERM and closing the listener, so load balancers see /readyz turn 503 first.
    drain_delay_seconds: float = 0.0
    access_log: bool = True
    access_log_queue: int = 10_000  # lines waiting for stdout; beyond this they are dropped and counted
    max_connections_per_account: int = 256
    # What a client may send (bounds enforced by the HTTP server, before the app sees anything).
    max_header_bytes: int = 64 * 1024  # request line plus headers; over it: 431
    header_timeout_seconds: float = 10.0  # until a request's headers have all arrived
    body_timeout_seconds: float = 30.0  # until a request's body has all arrived
    keepalive_timeout_seconds: float = 5.0  # an idle connection (no request under way) is closed after this
    max_connections: int = 2048  # concurrent client connections per worker; beyond, 503 and close
    # What a provider may send back.
    max_response_bytes: int = 8 * 1024 * 1024  # a JSON answer or error body, after decompression
    max_response_header_bytes: int = 16 * 1024  # one response header line
    max_stream_event_bytes: int = 1024 * 1024  # one SSE event
    max_stream_bytes: int = 64 * 1024 * 1024  # a whole stream, after decompression


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class Price:
    """USD per token (configured per million tokens). Cached prompt tokens, and tokens written to a
    provider's prompt cache, have prices of their own where the provider says so; None: the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class Deployment:
    """A model served through one account; what routing chooses between."""

    account: str
    model: str
    upstream_model: str
    mode: Mode
    limits: Limits
    price: Price | None
    context_window: int | None
    max_output_tokens: int | None
    capabilities: frozenset[str]
    # "<account>/<model>": read several times per request by routing, the limiter and the breaker, so made once
    id: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.account}/{self.model}")


@dataclass(frozen=True)
class AwsCredentials:
    """Where an AWS account's credentials come from (``kind: bedrock``): keys from the environment or files
    (``access_key_id`` and ``secret_access_key``, with ``session_token`` for temporary ones), a named profile
    of the shared config files, or, with neither, the standard AWS chain (environment, shared profile, web
    identity / IRSA, container and instance roles), resolved when the gateway starts."""

    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    profile: str | None = None


@dataclass(frozen=True)
class Account:
    """One credential at one provider, with its account-wide limits."""

    name: str
    kind: str
    base_url: str
    api_key: Secret | None
    api_version: str | None
    limits: Limits
    deployments: tuple[Deployment, ...]
    region: str | None = None  # the provider's region (AWS), where it has them
    aws: AwsCredentials | None = None  # AWS credentials (Bedrock); None: not an AWS account


@dataclass(frozen=True)
class BudgetCaps:
    """USD that one UTC calendar day, and one UTC calendar month, may spend; None: no cap."""

    daily_usd: float | None = None
    monthly_usd: float | None = None

    @property
    def any(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


@dataclass(frozen=True)
class VirtualKey:
    name: str
    key_sha256: str
    tier: str
    models: frozenset[str]  # "*" allows every model
    limits: Limits = Limits()  # the key's own quota
    user_limits: Limits = Limits()  # a quota per end user of this key (see Features.end_user)
    trusted: bool = False  # a service key that may assert tier and end user in x-gateway-* headers
    budget: BudgetCaps = BudgetCaps()  # the key's own spend caps
    user_budget: BudgetCaps = BudgetCaps()  # spend caps per end user of this key (see Features.end_user)

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models


@dataclass(frozen=True)
class CircuitSettings:
    """Defaults from tests/protection/test_brownout_e2e.py: two providers failing half their requests keep
    answering about 94 % through fallback (as with no breaker; 5 consecutive failures or a 50 % error rate
    opened both circuits at once), while a provider that is down for good is cut off after about 20 tries.
    A run of 20 failures at 50 % comes once in about two million attempts; 10 would at 500 attempts/s
    come every few seconds."""

    failure_threshold: int = 20  # consecutive failures that open the circuit (what trips it at low traffic)
    error_rate_threshold: float = 0.8  # or: error rate over the window above this ...
    min_requests: int = 20  # ... once the window has at least this many attempts
    window_seconds: float = 30.0
    open_seconds: float = 15.0  # open -> half_open after this
    half_open_probes: int = 2  # probe requests allowed while half-open (fleet-wide, approximately)
    ewma_alpha: float = 0.2


# Defaults that request-path code takes as its parameters' defaults too. Module constants, not reads of the
# class's defaults: the compiled build (gateway/compiled.py) makes these classes native, whose class
# attributes are field descriptors rather than defaults.
DEFAULT_OUTPUT_TOKENS = 1024
MAX_N = 16
MAX_RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class LimitSettings:
    queue_timeout_seconds: float = 1.0  # wait this long for provider capacity before answering 429
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS  # reserved for the answer when a request sets no max_tokens
    redis_deadline_ms: float = 50.0  # no request waits longer than this on Redis
    fail_mode: str = "closed"  # quotas while Redis is unreachable: closed (503) or open (ignored)
    key_prefix: str = "llmgw"
    max_n: int = MAX_N  # a chat request asking for more choices than this is refused (400)
    max_output_tokens: int = 32_768  # max_tokens ceiling for a deployment whose own output limit is unknown
    # any Retry-After or cooldown, a provider's or our own, is capped
    max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry traces, exported over OTLP/HTTP; off while ``endpoint`` is empty."""

    endpoint: str = ""  # the collector's traces URL; one without a path gets /v1/traces
    sample_ratio: float = 0.1  # of new traces; a client's sampled traceparent is always followed
    service_name: str = "llm-gateway"


@dataclass(frozen=True)
class ObservabilitySettings:
    metrics_token: Secret | None = None  # when set, /metrics wants "Authorization: Bearer <token>"
    headroom_interval_seconds: float = 5.0  # how often each worker samples gateway_bucket_headroom_ratio
    tracing: TracingSettings = TracingSettings()


@dataclass(frozen=True)
class BudgetSettings:
    """``budgets:``: spend caps per tier (as routing identifies the tier: the key's, or a trusted key's
    ``x-gateway-tier``); the caps of keys and their end users are on the keys."""

    tiers: Mapping[str, BudgetCaps] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    source: str
    server: ServerSettings
    redis_url: str
    accounts: tuple[Account, ...]
    keys: tuple[VirtualKey, ...]
    admin_key_sha256: str | None
    policy_dir: str
    limits: LimitSettings = LimitSettings()
    policy_max_bytes: int = POLICY_MAX_BYTES
    ready_requires_redis: bool = False
    circuit: CircuitSettings = CircuitSettings()
    demo: bool = False
    budgets: BudgetSettings = BudgetSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return tuple(d for a in self.accounts for d in a.deployments)

    def secrets(self) -> tuple[str, ...]:
        """Every credential the configuration holds, for redaction by value (``errors.redact``): provider
        keys (from the environment or files), the metrics token, and credentials in URLs (the userinfo's
        password or token, or a ``password`` query parameter, of ``state.redis_url`` and every ``base_url``),
        raw and percent-decoded. Longest first, so a secret containing another is removed whole; values under 8
        characters are left out, as they would match ordinary text."""
        found = {a.api_key.reveal() for a in self.accounts if a.api_key is not None}
        for aws in (a.aws for a in self.accounts if a.aws is not None):
            found |= {s.reveal() for s in (aws.secret_access_key, aws.session_token) if s is not None}
        if self.observability.metrics_token is not None:
            found.add(self.observability.metrics_token.reveal())
        for url in (self.redis_url, *(a.base_url for a in self.accounts)):
            try:
                parts = urlsplit(url)
            except ValueError:  # not a URL the gateway could use either
                continue
            userinfo = parts.password if parts.password is not None else parts.username
            for value in ([userinfo] if userinfo else []) + parse_qs(parts.query).get("password", []):
                found |= {value, unquote(value)}
        return tuple(sorted((s for s in found if len(s) >= 8), key=lambda s: (-len(s), s)))
