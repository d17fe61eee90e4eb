"""The adapters' own CPU per request, without HTTP: `.venv/bin/python bench/translation.py`.

Per kind, for the bench's request and the static answers of bench/provider_fixtures.py: translating the
request (``to_request``) and serialising it, translating the JSON answer (``from_response``) and reading its
usage, and framing plus translating the stream event by event (as ``upstream.Exchange`` does); Bedrock's
SigV4 signature separately. The OpenAI pass-through's request step is the baseline (its answers pass as
bytes). Median of 5 runs of ``timeit`` (µs per request), one core.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.provider_fixtures import anthropic_message, anthropic_stream, converse, converse_stream  # noqa: E402
from gateway.config.model import CAPABILITIES, Account, AwsCredentials, Deployment, Limits, Secret  # noqa: E402
from gateway.providers import REGISTRY  # noqa: E402
from gateway.providers.base import Provider  # noqa: E402
from gateway.providers.bedrock.signing import signer  # noqa: E402

BODY: dict[str, Any] = {
    "model": "bench",
    "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello in a few words."},
    ],
    "max_tokens": 32,
}


def deployment(model: str) -> Deployment:
    return Deployment("bench", "bench", model, "chat", Limits(), None, None, 4096, CAPABILITIES)


def request(provider: Provider, d: Deployment, body: dict[str, Any]) -> Callable[[], bytes]:
    return lambda: orjson.dumps(provider.to_request(body, d, provider, "chat"))


def answer(provider: Provider, d: Deployment, raw: bytes) -> Callable[[], object]:
    assert provider.from_response is not None
    translate = provider.from_response
    return lambda: provider.usage(translate(raw, d))


def stream(provider: Provider, d: Deployment, raw: bytes) -> Callable[[], list[bytes]]:
    assert provider.stream is not None
    make = provider.stream

    def run() -> list[bytes]:
        decoder, translator = provider.decoder(1 << 20), make(d)
        return [chunk for event in decoder.feed(raw) for chunk in translator.feed(event)] + translator.finish()

    return run


def per_call_us(work: Callable[[], object], number: int = 2000) -> float:
    return statistics.median(timeit.repeat(work, number=number, repeat=5)) / number * 1e6


def main() -> int:
    openai, anthropic, bedrock = REGISTRY["openai"], REGISTRY["anthropic"], REGISTRY["bedrock"]
    claude, llama = deployment("claude-haiku-4-5"), deployment("meta.llama3-3-70b-instruct-v1:0")
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    aws = AwsCredentials(Secret("AKIABENCHBENCH"), Secret("bench-secret-key"))
    account = Account(
        "b", "bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com", None, None, Limits(), (), "us-east-1", aws
    )
    sign = signer(account)
    assert sign is not None
    url = bedrock.url(account, llama, "chat")
    payload = orjson.dumps(bedrock.to_request(BODY, llama, bedrock, "chat"))
    rows = [
        ("openai (pass-through)", "request", request(openai, deployment("gpt-4o-mini"), BODY)),
        ("openai (pass-through)", "stream request", request(openai, deployment("gpt-4o-mini"), streamed)),
        ("anthropic", "request", request(anthropic, claude, BODY)),
        ("anthropic", "answer", answer(anthropic, claude, anthropic_message())),
        ("anthropic", "stream (13 events)", stream(anthropic, claude, anthropic_stream())),
        ("bedrock", "request", request(bedrock, llama, BODY)),
        ("bedrock", "answer", answer(bedrock, llama, converse())),
        ("bedrock", "stream (13 events)", stream(bedrock, llama, converse_stream())),
        ("bedrock", "SigV4 signature", lambda: sign(url, {"content-type": "application/json"}, payload)),
    ]
    print("| kind | step | µs per request |")
    print("|---|---|---|")
    for kind, step, work in rows:
        print(f"| {kind} | {step} | {per_call_us(work, 500 if 'SigV4' in step else 2000):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
