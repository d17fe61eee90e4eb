"""A provider that sends no usage on a stream (it ignores ``stream_options.include_usage``, as some
OpenAI-compatible servers do): the stream is priced from what was relayed, marked as an estimate."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from harness import ADMIN_KEY, free_port, start_gateway
from hostile import HostileUpstream, ok_stream
from ratelimit.support import wait_for
from spend import support
from spend.support import M

from gateway.tokens import estimate_prompt

BODY = {"model": "premium", "stream": True, "max_tokens": 50, "messages": [{"role": "user", "content": "Hello there"}]}


def test_a_stream_without_usage_is_priced_from_the_events_relayed(tmp_path: Path) -> None:
    with HostileUpstream(reply=ok_stream(pieces=7, usage=False)) as upstream:
        port = free_port()
        keys = [support.key("k", "k-secret")]
        gateway = start_gateway(tmp_path, support.config(port, upstream.url, keys=keys), port)
        try:
            with httpx.stream(
                "POST", f"{gateway.url}/v1/chat/completions", json=BODY, headers={"authorization": "Bearer k-secret"}
            ) as answer:
                assert answer.headers["x-gateway-cost-usd"].startswith("~")  # the maximum, before anything is known
                events = [line for line in answer.iter_lines() if line.startswith("data: ")]
            assert len(events) == 8 and events[-1] == "data: [DONE]"
            # The prompt as the gateway estimates it, and one token per content event relayed, at premium prices.
            expected = estimate_prompt(BODY) * 10 * M + 7 * 400 * M
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}

            def spent() -> float:
                rows = httpx.get(f"{gateway.url}/admin/spend", params={"key": "k"}, headers=admin).json()["keys"]
                return float(rows[0]["usd"]) if rows else 0.0

            wait_for(lambda: spent() > 0, timeout=5)
            assert abs(spent() - expected) < 1e-9
            (line,) = [json.loads(x) for x in gateway.logs().splitlines() if '"msg":"request"' in x]
            assert abs(line["cost_usd"] - expected) < 1e-6 and line["cost_estimated"] is True
        finally:
            gateway.stop()
