"""A gateway's memory (README, Benchmark: RSS after load, target 80 MB): small until a prompt needs counting,
and then the o200k tokenizer's tables and no Python copy of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from harness import TEST_KEY
from policy.support import MESSAGES, Launch, account, config, write_policy
from policy.test_stalls_e2e import SMALL, long_prompt

from gateway.fake.testing import FakeUpstream

TARGET_MB = 80.0  # the benchmark's target for RSS after load
TOKENIZER_MB = (30.0, 75.0)  # what loading and using o200k_base adds (measured: ~54 MB)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_memory_stays_small_until_a_prompt_needs_counting(launch: Launch, policy_dir: Path, fake: FakeUpstream) -> None:
    write_policy(policy_dir, SMALL)
    gateway = launch(lambda port: config(port, {"a": account(fake.url, {"st-x": {}})}, policy_dir))
    pid = gateway.proc.pid
    with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {TEST_KEY}"}) as client:
        for _ in range(200):
            assert client.post("/chat/completions", json={"model": "st", "messages": MESSAGES}).status_code == 200
        short = rss_mb(pid)
        body = {"model": "st", "messages": long_prompt(1_200, "memory"), "max_tokens": 3}
        assert client.post("/chat/completions", json=body, timeout=30).status_code == 200
        time.sleep(3)  # the tokenizer loads in a thread (0.2-0.5 s)
        assert client.post("/chat/completions", json=body, timeout=30).status_code == 200
        counting = rss_mb(pid)
    print(f"MEMORY: RSS {short:.1f} MB after 200 short requests, {counting:.1f} MB with the tokenizer loaded")
    assert short <= TARGET_MB, short
    assert TOKENIZER_MB[0] <= counting - short <= TOKENIZER_MB[1], (short, counting)
