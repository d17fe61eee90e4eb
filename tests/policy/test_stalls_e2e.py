"""Whole-loop stalls (issue 8, finding 16): work that used to run on the event loop and hold every
request behind it. A 1 MB policy took over a second to check, in line, on each reload; the first
prompt of 1,000 tokens or more loaded tiktoken's encoding in line (233 ms).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from harness import TEST_KEY
from policy.support import MESSAGES, Launch, account, config, write_policy

from gateway.fake.testing import FakeUpstream

SMALL = "routes:\n  st:\n    - name: main\n      candidates: [a/st-x]\n"
RULE = "    - name: main\n      match: {tier: [premium, gold]}\n      candidates: [a/st-x]\n      fallback: [a/st-x]\n"


def big_policy(size: int) -> str:
    """Valid routes until ``size`` bytes: as much checking work as a policy file may ask for."""
    parts, total, n = ["routes:\n"], 8, 0
    while total < size:
        parts.append(f"  filler-{n:05d}:\n{RULE}")
        total, n = total + len(parts[-1]), n + 1
    return "".join(parts)


def test_reloading_a_1mb_policy_does_not_hold_up_requests(launch: Launch, policy_dir: Path, fake: FakeUpstream) -> None:
    write_policy(policy_dir, SMALL)
    gateway = launch(lambda port: config(port, {"a": account(fake.url, {"st-x": {}})}, policy_dir))
    samples: list[tuple[float, float, str]] = []  # (sent, took, policy version)
    stop = threading.Event()

    def requests() -> None:
        body = {"model": "st", "messages": MESSAGES, "max_tokens": 3}
        with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {TEST_KEY}"}) as client:
            while not stop.is_set():
                sent = time.monotonic()
                response = client.post("/chat/completions", json=body, timeout=30)
                assert response.status_code == 200, response.text
                samples.append((sent, time.monotonic() - sent, response.headers["x-gateway-policy-version"]))
                stop.wait(0.005)

    worker = threading.Thread(target=requests, daemon=True)
    worker.start()
    try:
        while len(samples) < 20:
            time.sleep(0.01)
        before = samples[-1][2]
        write_policy(policy_dir, big_policy(1_000_000), name="big.yaml")
        reloading = time.monotonic()
        os.kill(gateway.proc.pid, signal.SIGHUP)
        deadline = reloading + 60
        while not samples or samples[-1][2] == before:
            assert time.monotonic() < deadline, "the 1 MB policy was never applied"
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        stop.set()
        worker.join(30)
    # From the signal to the first answer under the new version: every request sent meanwhile.
    applied = min(sent + took for sent, took, version in samples if version != before)
    during = [took for sent, took, _ in samples if reloading <= sent <= applied]
    slowest = max(during)
    print(f"STALL: 1 MB reload {applied - reloading:.2f}s, {len(during)} requests meanwhile, slowest {slowest:.3f}s")
    assert slowest < 0.3, slowest
    assert len(during) >= 5, "too few requests ran while the policy was being checked"


def long_prompt(words: int, salt: str) -> list[dict[str, str]]:
    text = " ".join(f"{salt}{i % 97} lorem ipsum dolor" for i in range(words // 4))
    return [{"role": "user", "content": text}]


def test_the_first_long_prompt_after_start_does_not_pay_for_loading_tiktoken(
    launch: Launch, policy_dir: Path, fake: FakeUpstream
) -> None:
    write_policy(policy_dir, SMALL)
    gateway = launch(lambda port: config(port, {"a": account(fake.url, {"st-x": {}})}, policy_dir))
    took = []
    with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {TEST_KEY}"}) as client:
        # The same small request first, so the connection and the request path are warm either way.
        assert client.post("/chat/completions", json={"model": "st", "messages": MESSAGES}).status_code == 200
        for salt in ("first", "second", "third"):
            body = {"model": "st", "messages": long_prompt(1_200, salt), "max_tokens": 3}
            sent = time.monotonic()
            assert client.post("/chat/completions", json=body, timeout=30).status_code == 200
            took.append(time.monotonic() - sent)
    print(f"STALL: long prompts took {', '.join(f'{t * 1000:.0f} ms' for t in took)}")
    assert took[0] < min(took[1:]) + 0.1, took  # loading the encoding in line costs 200 ms or more
