"""The README's first command as a new user runs it: `make run` from the root of a fresh clone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fresh import VENV, MakeRun, fresh_copy, make_run, user_env
from harness import free_port

from gateway.fake.testing import FakeUpstream

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_copy(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def demo(clone: Path) -> Iterator[MakeRun]:
    running = make_run(clone, free_port(), [], user_env())
    yield running
    running.stop()


def client(demo: MakeRun, key: str = "demo-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo.url}/v1", api_key=key, max_retries=0)


def test_the_demo_serves_the_example_policy_from_the_clone(demo: MakeRun, clone: Path) -> None:
    assert f"policy ({clone / 'policies'})" in demo.output()  # the clone's own example, found from its root
    ids = {m.id for m in client(demo).models.list()}
    assert {"agent-default", "auto", "gpt-4o-mini", "gemini-2.5-flash", "llama-3.1-70b"} <= ids
    raw = client(demo).chat.completions.with_raw_response.create(model="agent-default", messages=HELLO)
    assert raw.headers["x-gateway-rule"] == "agent-default/standard"
    assert raw.headers["x-gateway-deployment"] in ("openai-main/gpt-4o-mini", "gemini/gemini-2.5-flash")
    assert raw.parse().choices[0].message.content
    premium = client(demo, "demo-premium-key").chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert premium.headers["x-gateway-rule"] == "agent-default/premium"
    assert premium.headers["x-gateway-deployment"] == "openai-main/gpt-4o"


def test_chat_stream_and_embeddings_through_the_sdk(demo: MakeRun) -> None:
    answer = client(demo).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
    assert answer.choices[0].message.content and answer.usage is not None
    chunks = list(
        client(demo).chat.completions.create(
            model="agent-default",
            messages=HELLO,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    vectors = client(demo).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0


def test_explain_runs_from_the_clone_root(clone: Path) -> None:
    (clone / "req.json").write_text(json.dumps({"model": "agent-default", "messages": HELLO}))
    env = user_env(PYTHONPATH=str(clone))
    cases = (([], "agent-default/standard"), (["--header", "x-gateway-task:simple"], "agent-default/simple"))
    for header, rule in cases:
        result = subprocess.run(
            [str(VENV / "bin" / "gateway"), "explain", "req.json", *header],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        explained = json.loads(result.stdout)
        assert explained["rule"] == rule and explained["plan"]["entries"]


def test_the_failure_knob_shows_a_fallback(clone: Path) -> None:
    running = make_run(clone, free_port(), ["GATEWAY_DEMO_FAIL=gemini/gemini-2.5-flash"], user_env())
    try:
        raw = client(running).chat.completions.with_raw_response.create(model="agent-default", messages=HELLO)
        assert raw.headers["x-gateway-deployment"] == "openai-main/gpt-4o-mini"
        assert int(raw.headers["x-gateway-attempts"]) >= 2  # gemini first (most headroom), failed, fell back
        tried = '"tried":["gemini/gemini-2.5-flash"'
        assert tried in running.wait_for(tried)
    finally:
        running.stop()


def test_a_provider_key_without_config_serves_that_provider(clone: Path) -> None:
    with FakeUpstream(api_key="sk-user-own-key") as provider:
        env = user_env(OPENAI_API_KEY="sk-user-own-key", OPENAI_BASE_URL=provider.base_url)
        running = make_run(clone, free_port(), [], env)
        try:
            assert "policy: none" in running.output()  # the example policy is not applied to the user's accounts
            ids = {m.id for m in client(running).models.list()}
            assert "gpt-4o-mini" in ids and "agent-default" not in ids
            answer = client(running).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=3)
            assert answer.choices[0].message.content
            seen = provider.stats()["last_requests"][-1]
            assert seen["headers"]["authorization"] == "Bearer sk-user-own-key"
        finally:
            running.stop()
