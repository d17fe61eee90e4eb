"""A served request leaves no reference cycles behind: the gateway runs its young-generation garbage
collections rarely (``gateway.app._tune_collector``) because there is nothing for them to find.

Tenacity set up on every request once left ~40 objects in cycles per request, and collecting them
was a tenth of the gateway's CPU under load; this test keeps such a regression from coming back.
The app runs in process (Starlette's test client), so the garbage is filtered to what the gateway
and its libraries made: the test client makes cycles of its own.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import TEST_KEY, UPSTREAM_KEY, config_text, free_port
from starlette.testclient import TestClient

from gateway.app import build_app
from gateway.config import load_settings
from gateway.fake.testing import FakeUpstream
from gateway.providers import REGISTRY

REQUESTS = 30
SERVING = ("gateway", "tenacity", "aiohttp", "multidict", "yarl", "redis", "hiredis", "prometheus_client", "starlette")


@pytest.fixture
def client(
    tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(free_port(), fake.url, fake2.url))
    threshold = gc.get_threshold()
    try:
        with TestClient(
            build_app(load_settings(path, kinds=REGISTRY)), headers={"Authorization": f"Bearer {TEST_KEY}"}
        ) as client:
            yield client
    finally:  # the app tuned the collector for the whole (test) process: undo it
        gc.unfreeze()
        gc.set_threshold(*threshold)


def made_by_the_gateway(thing: object) -> bool:
    code = getattr(thing, "f_code", None) or getattr(thing, "__code__", None) or getattr(thing, "cr_code", None)
    if code is not None:
        name = code.co_filename
        return "testclient" not in name and any(f"/{package}/" in name for package in SERVING)
    return (type(thing).__module__ or "").split(".")[0] in SERVING


def cycles_left_by(call: Callable[[], None]) -> Counter[str]:
    """What ``call`` left in reference cycles that the gateway made, by type."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        call()
        gc.collect()
        return Counter(type(o).__qualname__ for o in gc.garbage if made_by_the_gateway(o))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_json_and_streamed_requests_leave_no_cycles(client: TestClient) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    for body in (chat, {**chat, "stream": True}):

        def serve(body: dict[str, object] = body) -> None:
            for _ in range(REQUESTS):
                response = client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200, response.text

        serve()  # warm: pools, caches, first-use imports
        assert cycles_left_by(serve) == Counter()
