"""Traces, end to end: the gateway in this process, on a loopback port, traced to the SDK's in-memory exporter
(and exporting to a fake OTLP/HTTP collector, as it would to a real one); the official SDK as the client and
the fake provider behind. A span per request with children for the admission, each attempt and the
stream, GenAI attributes on them, W3C ``traceparent`` followed from the client and sent to the provider.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from harness import TEST_KEY, UPSTREAM_KEY
from observability.serving import Collector, InProcess, collector, serve
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from policy.support import MESSAGES, NO_CIRCUIT, account, key, write_policy

from gateway.fake.testing import FakeUpstream

POLICY = """
routes:
  tr-route:
    - name: main
      candidates: [b/tr-flaky]
      fallback: [a/tr-main]
defaults:
  retry_on: [429, 5xx]
  retries: {same_deployment: 0}
"""
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")  # version, trace, parent, flags


def gateway_config(port: int, a: str, b: str, policy_dir: Path, endpoint: str, ratio: float) -> str:
    doc: dict[str, Any] = {
        "server": {"port": port, "access_log": False, "shutdown_grace_seconds": 2},
        "circuit": NO_CIRCUIT,
        "providers": {
            "a": account(a, {"tr-main": {}, "text-embedding-3-small": {}}),
            "b": account(b, {"tr-flaky": {}}),
        },
        "keys": [key("tester", TEST_KEY, ["*"])],
        "policies": {"dir": str(policy_dir)},
        "observability": {"tracing": {"endpoint": endpoint, "sample_ratio": ratio}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


Traced = tuple[InProcess, InMemorySpanExporter, Collector]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream, fake2: FakeUpstream) -> Iterator[Traced]:
    directory = tmp_path_factory.mktemp("traced")
    write_policy(directory / "policies", POLICY)
    env = {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}
    with collector() as sink:

        def make(port: int) -> str:
            return gateway_config(port, fake.url, fake2.url, directory / "policies", sink.url, 1.0)

        with serve(make, directory, env) as gateway:
            tracer = gateway.runtime.tracer
            assert tracer is not None
            memory = InMemorySpanExporter()
            tracer.provider.add_span_processor(SimpleSpanProcessor(memory))
            yield gateway, memory, sink


@pytest.fixture(autouse=True)
def _well_behaved(fresh_fakes: tuple[FakeUpstream, FakeUpstream]) -> None:
    """Every test starts from fakes that answer (and leaves them so)."""


def client(gateway: InProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)


def trace_of(memory: InMemorySpanExporter, request_id: str, timeout: float = 5.0) -> list[ReadableSpan]:
    """Every span of the request's trace, once its request span has ended (it ends after the answer is out)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = memory.get_finished_spans()
        root = [s for s in spans if s.attributes and s.attributes.get("gateway.request_id") == request_id]
        if root:
            assert root[0].context is not None
            trace_id = root[0].context.trace_id
            return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
        assert time.monotonic() < deadline, f"no span for request {request_id}"
        time.sleep(0.02)


def server_span(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    (found,) = [s for s in spans if s.kind == SpanKind.SERVER]
    return found


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time or 0,
    )


def sent_upstream(upstream: FakeUpstream, request_id: str) -> list[dict[str, Any]]:
    """The requests the fake provider received for one gateway request (x-client-request-id names it)."""
    return [r for r in upstream.stats()["last_requests"] if r["headers"].get("x-client-request-id") == request_id]


def test_a_json_answer_is_one_server_span_with_genai_attributes_and_its_children(
    traced: Traced, fake: FakeUpstream
) -> None:
    gateway, memory, _ = traced
    raw = client(gateway).chat.completions.with_raw_response.create(model="tr-main", messages=MESSAGES, max_tokens=5)
    answer, request_id = raw.parse(), raw.headers["x-request-id"]
    spans = trace_of(memory, request_id)
    root = server_span(spans)
    assert root.name == "chat tr-main" and root.parent is None  # no traceparent came in: a new trace
    attributes = dict(root.attributes or {})
    assert answer.usage is not None
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "tr-main"
    assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.response.model"] == answer.model
    assert attributes["gen_ai.response.id"] == answer.id
    assert attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attributes["gen_ai.response.finish_reasons"] == (answer.choices[0].finish_reason,)
    assert attributes["http.response.status_code"] == 200 and attributes["gateway.deployment"] == "a/tr-main"
    assert attributes["gateway.key"] == "tester" and root.status.status_code == StatusCode.UNSET
    admit, attempt = children(spans, root)
    assert admit.name == "gateway.admit" and admit.kind == SpanKind.INTERNAL
    assert attempt.name == "chat tr-main" and attempt.kind == SpanKind.CLIENT
    assert dict(attempt.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "tr-main",
        "server.address": "127.0.0.1",
        "server.port": int(fake.url.rsplit(":", 1)[1]),
        "gateway.deployment": "a/tr-main",
        "gateway.attempt": 1,
    }
    # The provider was told the trace: the attempt is the parent of whatever it records.
    (upstream,) = sent_upstream(fake, request_id)
    found = TRACEPARENT.match(upstream["headers"]["traceparent"])
    assert found and attempt.context is not None and int(found[3], 16) & 1  # sampled
    assert (int(found[1], 16), int(found[2], 16)) == (attempt.context.trace_id, attempt.context.span_id)


def test_a_fallback_is_two_attempt_spans_the_first_failed_by_class(
    traced: Traced, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    gateway, memory, _ = traced
    fake2.configure(model="tr-flaky", failure_kind="500", failure_rate=1.0)
    raw = client(gateway).chat.completions.with_raw_response.create(model="tr-route", messages=MESSAGES, max_tokens=5)
    assert raw.headers["x-gateway-deployment"] == "a/tr-main"
    spans = trace_of(memory, raw.headers["x-request-id"])
    root = server_span(spans)
    assert root.name == "chat tr-route"
    assert dict(root.attributes or {})["gateway.tried"] == ("b/tr-flaky", "a/tr-main")
    names = [(s.name, dict(s.attributes or {}).get("error.type")) for s in children(spans, root)]
    assert names == [
        ("gateway.admit", None),
        ("chat tr-flaky", "5xx"),
        ("gateway.admit", None),
        ("chat tr-main", None),
    ]
    failed = children(spans, root)[1]
    assert failed.status.status_code == StatusCode.ERROR and failed.status.description == "5xx"
    assert not failed.events  # a failure names its class; the provider's text stays out of traces


def test_a_stream_has_a_relay_span_and_its_finish_reasons_and_usage_on_the_request(traced: Traced) -> None:
    gateway, memory, _ = traced
    stream = client(gateway).chat.completions.with_raw_response.create(
        model="tr-main", messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream.parse())
    usage = chunks[-1].usage
    assert usage is not None
    spans = trace_of(memory, stream.headers["x-request-id"])
    root = server_span(spans)
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    reasons = tuple(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    assert reasons and attributes["gen_ai.response.finish_reasons"] == reasons
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < 5
    relay = [s for s in children(spans, root) if s.name == "gateway.stream"]
    assert len(relay) == 1 and relay[0].attributes is not None
    assert relay[0].attributes["gateway.events"] == len(chunks) + 1  # and [DONE]


def test_a_clients_sampled_traceparent_is_continued_and_passed_on(traced: Traced, fake: FakeUpstream) -> None:
    gateway, memory, _ = traced
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="tr-main", messages=MESSAGES, extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
    )
    request_id = raw.headers["x-request-id"]
    root = server_span(trace_of(memory, request_id))
    assert root.context is not None and root.parent is not None
    assert (root.context.trace_id, root.parent.span_id) == (int(trace_id, 16), int(parent_id, 16))
    assert root.parent.is_remote
    (upstream,) = sent_upstream(fake, request_id)
    found = TRACEPARENT.match(upstream["headers"]["traceparent"])
    assert found and found[1] == trace_id and int(found[3], 16) & 1


def test_a_trace_the_client_did_not_sample_is_not_recorded_nor_passed_on(traced: Traced, fake: FakeUpstream) -> None:
    gateway, memory, _ = traced
    trace_id = secrets.token_hex(16)
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="tr-main", messages=MESSAGES, extra_headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"}
    )
    request_id = raw.headers["x-request-id"]
    client(gateway).models.list()  # a later request: anything of the first would have ended by now
    time.sleep(0.2)
    assert not [s for s in memory.get_finished_spans() if s.context and s.context.trace_id == int(trace_id, 16)]
    (upstream,) = sent_upstream(fake, request_id)
    assert "traceparent" not in upstream["headers"]


def test_errors_are_spans_too_and_only_server_failures_are_marked_failed(
    traced: Traced, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    gateway, memory, _ = traced
    refused = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "tr-main", "messages": MESSAGES})
    assert refused.status_code == 401
    root = server_span(trace_of(memory, refused.headers["x-request-id"]))
    assert dict(root.attributes or {})["http.response.status_code"] == 401
    assert root.status.status_code == StatusCode.UNSET  # the client's mistake, not the gateway's failure
    fake.configure(model="tr-main", failure_kind="500", failure_rate=1.0)
    fake2.configure(model="tr-flaky", failure_kind="500", failure_rate=1.0)
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(model="tr-route", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.response is not None
    spans = trace_of(memory, info.value.response.headers["x-request-id"])
    root = server_span(spans)
    assert root.status.status_code == StatusCode.ERROR
    assert [dict(s.attributes or {}).get("error.type") for s in children(spans, root) if s.kind == SpanKind.CLIENT] == [
        "5xx",
        "5xx",
    ]


def test_embeddings_are_traced_as_their_operation(traced: Traced) -> None:
    gateway, memory, _ = traced
    raw = client(gateway).embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
    spans = trace_of(memory, raw.headers["x-request-id"])
    root = server_span(spans)
    assert root.name == "embeddings text-embedding-3-small"
    attempt = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert [s.name for s in attempt] == ["embeddings text-embedding-3-small"]


def test_spans_reach_the_collector_over_otlp_http(traced: Traced) -> None:
    gateway, memory, sink = traced
    raw = client(gateway).chat.completions.with_raw_response.create(model="tr-main", messages=MESSAGES)
    root = server_span(trace_of(memory, raw.headers["x-request-id"]))
    tracer = gateway.runtime.tracer
    assert tracer is not None and root.context is not None
    tracer.provider.force_flush()
    trace_id = root.context.trace_id.to_bytes(16, "big")
    deadline = time.monotonic() + 10
    while not [s for s in sink.spans if s.trace_id == trace_id]:
        assert time.monotonic() < deadline, "the collector received nothing of the trace"
        time.sleep(0.05)
    exported = {s.name for s in sink.spans if s.trace_id == trace_id}
    assert exported == {"chat tr-main", "gateway.admit"}  # the request's span and its attempt share a name
    assert set(sink.content_types) == {"application/x-protobuf"}


def test_new_traces_are_sampled_at_the_configured_ratio(
    tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    write_policy(tmp_path / "policies", POLICY)
    with collector() as sink:

        def make(port: int) -> str:
            return gateway_config(port, fake.url, fake2.url, tmp_path / "policies", sink.url, 0.25)

        with serve(make, tmp_path, {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gateway:
            tracer = gateway.runtime.tracer
            assert tracer is not None
            memory = InMemorySpanExporter()
            tracer.provider.add_span_processor(SimpleSpanProcessor(memory))
            with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {TEST_KEY}"}) as http:
                body = {"model": "tr-main", "messages": MESSAGES, "max_tokens": 1}
                # Every other request carries a malformed traceparent: a new trace like any other, not a sampled one.
                garbled = {"traceparent": "00-not-a-trace-01"}
                asked = [
                    http.post("/chat/completions", json=body, headers=garbled if n % 2 else {}).headers["x-request-id"]
                    for n in range(300)
                ]
            deadline = time.monotonic() + 5
            while True:
                traced_ids = {
                    s.attributes.get("gateway.request_id")
                    for s in memory.get_finished_spans()
                    if s.kind == SpanKind.SERVER and s.attributes
                }
                if len(traced_ids) >= 30 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(0.2)  # the last answers' spans end just after them
            traced_ids = {
                s.attributes.get("gateway.request_id")
                for s in memory.get_finished_spans()
                if s.kind == SpanKind.SERVER and s.attributes
            }
    assert traced_ids <= set(asked)
    assert 30 <= len(traced_ids) <= 120, len(traced_ids)  # 75 expected; 5 standard deviations either way
    assert 8 <= len(traced_ids & set(asked[1::2])) <= 70  # 37.5 expected of the garbled ones
