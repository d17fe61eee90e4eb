"""OpenTelemetry traces, off unless ``observability.tracing.endpoint`` is set: only then is this module (and
OpenTelemetry, the ``tracing`` extra) imported, so a gateway without it pays nothing.

Per request (``/v1/chat/completions``, ``/v1/embeddings``) one SERVER span, named as the GenAI semantic
conventions name an operation (``chat agent-default``), with children:

    gateway.admit            each admission: the limiter's answer, and any wait in line (stage, candidates)
    chat <upstream model>    each attempt, CLIENT: from the send to the answer in hand; error.type on failure
    gateway.stream           a stream's relay, from its first byte to its end (events, finish reasons)

GenAI attributes (``gen_ai.operation.name``, ``gen_ai.provider.name`` and the deprecated ``gen_ai.system``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.usage.input_tokens``
/ ``output_tokens``, ``gen_ai.response.finish_reasons``) go on the request span, which stands for the whole
operation the client asked for; each attempt span names the provider, its model and its server. Never
prompt or answer text, nor end users or key values (the key's configured name is there).

Sampling is parent-based: a client's ``traceparent`` that is sampled is always followed, one that is not
never is, and a new trace is sampled at ``sample_ratio``, decided before OpenTelemetry is asked for anything
(a request that is not sampled costs a random draw, then makes no span and no context). A sampled attempt
sends its own ``traceparent`` to the provider. Spans leave through a batch processor (a background thread)
to the collector's OTLP/HTTP endpoint; a collector that is away costs dropped spans, never a request.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.config.model import Account, Deployment, TracingSettings
from gateway.record import RequestRecord
from gateway.types import Batches

# gen_ai.provider.name per provider kind, where the conventions name the provider; other kinds by their kind.
PROVIDER_NAMES = MappingProxyType(
    {
        "openai": "openai",
        "azure": "azure.ai.openai",
        "groq": "groq",
        "gemini": "gcp.gemini",
        "anthropic": "anthropic",
        "bedrock": "aws.bedrock",
    }
)
_OPERATIONS = MappingProxyType({"chat": "chat", "embedding": "embeddings"})  # by deployment mode
_EXPORT_TIMEOUT_S = 5.0


def traces_url(endpoint: str) -> str:
    """The collector's OTLP/HTTP traces URL: as given, or with ``/v1/traces`` when it names no path.

    >>> traces_url("http://otel:4318"), traces_url("https://c.example/otlp/v1/traces")
    ('http://otel:4318/v1/traces', 'https://c.example/otlp/v1/traces')
    """
    return endpoint.rstrip("/") + "/v1/traces" if urlsplit(endpoint).path in ("", "/") else endpoint


def answer_attributes(body: bytes) -> dict[str, Any]:
    """GenAI response attributes of an OpenAI-shaped answer or stream chunk (pure; {} when it is not one).

    >>> answer_attributes(b'{"id": "c1", "model": "m", "choices": [{"finish_reason": "stop"}]}')
    {'gen_ai.response.id': 'c1', 'gen_ai.response.model': 'm', 'gen_ai.response.finish_reasons': ['stop']}
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(doc, dict):
        return {}
    found: dict[str, Any] = {}
    for name in ("id", "model"):
        if isinstance(doc.get(name), str):
            found[f"gen_ai.response.{name}"] = doc[name]
    choices = doc.get("choices")
    reasons = [
        c["finish_reason"]
        for c in (choices if isinstance(choices, list) else [])
        if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
    ]
    if reasons:
        found["gen_ai.response.finish_reasons"] = reasons
    return found


class Tracer:
    """The few calls the gateway makes, over one OpenTelemetry tracer provider per worker."""

    def __init__(self, provider: TracerProvider, accounts: Sequence[Account], sample_ratio: float) -> None:
        self.provider = provider
        self._ratio = sample_ratio
        self._draw = random.Random().random  # seeded from os.urandom
        self._tracer = provider.get_tracer("llm-gateway")
        self._propagator = TraceContextTextMapPropagator()
        self._providers = {a.name: PROVIDER_NAMES.get(a.kind, a.kind) for a in accounts}
        self._servers = {a.name: urlsplit(a.base_url) for a in accounts}

    @classmethod
    def build(cls, settings: TracingSettings, accounts: Sequence[Account], instance: str, version: str) -> Tracer:
        """A provider sampling at ``settings.sample_ratio`` and exporting to ``settings.endpoint``; the OTEL_*
        environment variables the SDK reads (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES...) apply."""
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": version, "service.instance.id": instance}
        )
        # New traces are sampled in ``begin``, before the SDK sees them; it follows the client's decision.
        provider = TracerProvider(sampler=ParentBased(ALWAYS_ON), resource=resource, shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=traces_url(settings.endpoint), timeout=_EXPORT_TIMEOUT_S)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, accounts, settings.sample_ratio)

    def begin(self, headers: Mapping[str, str], operation: str, request_id: str) -> RequestTrace | None:
        """The request's span, current from now on in this task; None when the trace is not sampled."""
        parent = self._propagator.extract(headers) if "traceparent" in headers else None
        if parent is not None and not trace.get_current_span(parent).get_span_context().is_valid:
            parent = None  # a malformed traceparent starts a new trace, sampled like any other
        if parent is None and self._draw() >= self._ratio:
            return None
        attributes = {"gen_ai.operation.name": operation, "gateway.request_id": request_id}
        span = self._tracer.start_span(operation, parent, SpanKind.SERVER, attributes)
        if not span.is_recording():
            return None
        return RequestTrace(self, span, context.attach(trace.set_span_in_context(span)), operation)

    @staticmethod
    def traced() -> bool:
        """The current request is traced (its span is current): its children are worth making."""
        return trace.get_current_span().is_recording()

    def admission(self, stage: str, candidates: list[str]) -> _Child:
        attributes = {"gateway.stage": stage, "gateway.candidates": candidates}
        return _Child(self._tracer, "gateway.admit", SpanKind.INTERNAL, attributes)

    def attempt(self, deployment: Deployment, number: int, classify: Callable[[BaseException], str]) -> _Child:
        server = self._servers[deployment.account]
        provider = self._providers[deployment.account]
        operation = _OPERATIONS[deployment.mode]
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": deployment.upstream_model,
            "server.address": server.hostname or "",
            "gateway.deployment": deployment.id,
            "gateway.attempt": number,
        }
        if server.port is not None:
            attributes["server.port"] = server.port
        name = f"{operation} {deployment.upstream_model}"
        return _Child(self._tracer, name, SpanKind.CLIENT, attributes, classify)

    def inject(self, headers: dict[str, str]) -> None:
        """``traceparent`` (and ``tracestate``) for the provider, from the current attempt, when it is sampled."""
        if trace.get_current_span().get_span_context().trace_flags.sampled:
            self._propagator.inject(headers)

    def provider_name(self, deployment_id: str) -> str:
        """``gen_ai.provider.name`` of a deployment (``account/model``; account names hold no ``/``)."""
        return self._providers[deployment_id.partition("/")[0]]

    def stream_span(self) -> Span:
        return self._tracer.start_span("gateway.stream", None, SpanKind.INTERNAL)

    def close(self, timeout: float = 3.0) -> None:
        """Export what is pending, waiting ``timeout`` seconds at most (a collector that is away must not
        hold up the exit)."""
        closing = threading.Thread(target=self.provider.shutdown, name="gateway-trace-close", daemon=True)
        closing.start()
        closing.join(timeout)


class _Child:
    """A child span of the current one, current while its block runs; nothing when the request is not
    traced. A failure names its class (``error.type``), never its text; a client leaving is not an error."""

    __slots__ = ("_tracer", "_name", "_kind", "_attributes", "_classify", "_span", "_token")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        classify: Callable[[BaseException], str] | None = None,
    ) -> None:
        self._tracer, self._name, self._kind, self._attributes = tracer, name, kind, attributes
        self._classify = classify
        self._span: Span | None = None
        self._token: Token[Context] | None = None

    def __enter__(self) -> Span | None:
        if trace.get_current_span().is_recording():
            self._span = self._tracer.start_span(self._name, None, self._kind, self._attributes)
            self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        span = self._span
        if span is None:
            return
        if isinstance(error, asyncio.CancelledError):
            span.set_attribute("gateway.cancelled", True)
        elif error is not None:
            error_type = self._classify(error) if self._classify is not None else type(error).__name__
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
        if self._token is not None:
            context.detach(self._token)


def _finish_reasons(events: list[bytes]) -> list[str]:
    reasons: list[str] = []
    for event in events:
        if b'"finish_reason"' in event and b'"finish_reason":null' not in event:
            reasons += answer_attributes(event).get("gen_ai.response.finish_reasons", [])
    return reasons


class RequestTrace:
    """A sampled request's span, and its stream's; ``end`` closes them with what the request did."""

    def __init__(self, tracer: Tracer, span: Span, token: Token[Context], operation: str) -> None:
        self._tracer = tracer
        self.span = span
        self._token = token
        self._operation = operation
        self._stream: Span | None = None

    def answered(self, body: bytes) -> None:
        """A JSON answer: its model, id and finish reasons."""
        self.span.set_attributes(answer_attributes(body))

    def relay(self, first: list[bytes], rest: Batches) -> Batches:
        """A stream about to be relayed (its first events, and the batches after them): its span starts, and
        the events after the first are watched for finish reasons."""
        self.span.set_attributes(answer_attributes(first[0]))
        self._stream = self._tracer.stream_span()
        return self._watch(first[1:], rest)

    async def _watch(self, more: list[bytes], rest: Batches) -> Batches:
        reasons = _finish_reasons(more)  # those that came with the first: relayed with it
        events = 1 + len(more)
        try:
            async for batch in rest:
                events += len(batch)
                reasons += _finish_reasons(batch)
                yield batch
        finally:
            await rest.aclose()
            if reasons:
                self.span.set_attribute("gen_ai.response.finish_reasons", reasons)
            if self._stream is not None:
                self._stream.set_attribute("gateway.events", events)
                self._stream.end()
                self._stream = None

    def end(self, record: RequestRecord) -> None:
        """Close the request's span (and its stream's, if the relay never ran) with what the request did."""
        if self._stream is not None:
            self._stream.end()
            self._stream = None
        span = self.span
        if record.model:
            span.update_name(f"{self._operation} {record.model}")
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "url.path": record.endpoint,
            "http.response.status_code": record.status,
            "gateway.attempts": record.attempts,
            "gateway.stream": record.stream,
        }
        optional: dict[str, Any] = {
            "gen_ai.request.model": record.model,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "gen_ai.response.time_to_first_chunk": None if record.ttft_ms is None else record.ttft_ms / 1000,
            "gateway.deployment": record.deployment,
            "gateway.rule": record.rule,
            "gateway.key": record.key_name,
            "gateway.tried": record.tried or None,
            "gateway.error": record.error_code,
        }
        attributes.update((name, value) for name, value in optional.items() if value is not None)
        if record.deployment:
            provider = self._tracer.provider_name(record.deployment)
            attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = provider
        span.set_attributes(attributes)
        if record.status >= 500:
            span.set_attribute("error.type", record.error_code or str(record.status))
            span.set_status(Status(StatusCode.ERROR, record.error_code or str(record.status)))
        span.end()
        context.detach(self._token)
