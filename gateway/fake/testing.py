"""``FakeUpstream``: the fake on a background thread with its own event loop, for synchronous tests.

    with FakeUpstream(api_key="sk-fake", rpm=60, latency_ms=5) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-fake")
        fake.configure(model="*", failure_kind="429", failure_rate=1.0)
        fake.stats()["requests_total"]

Control calls go over HTTP to ``/_fake/*`` so nothing is shared between threads. The same fake speaks
Anthropic's Messages API at ``url + "/v1/messages"`` and Bedrock's Converse at ``url + "/model/{id}/converse"``
(its API key then checks Anthropic's key, and Bedrock's SigV4 signatures as the secret access key).
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from types import TracebackType
from typing import Any

import orjson

from gateway.fake.behaviour import Behaviour, FakeSettings
from gateway.fake.runner import RunningServer, start_server

START_TIMEOUT_S = 30.0


class FakeUpstream:
    def __init__(
        self,
        api_key: str | None = "sk-fake",
        rpm: int | None = None,
        tpm: int | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        **behaviour: Any,
    ) -> None:
        """``behaviour`` takes the fields of ``Behaviour`` (latency_ms, failure_kind, ...)."""
        self.settings = FakeSettings(
            host=host,
            port=port,
            api_key=api_key,
            rpm=rpm,
            tpm=tpm,
            seed=seed,
            behaviour=Behaviour(**behaviour),
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: RunningServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake upstream is not running")
        return self._server.url

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the fake upstream did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None
        self._server = self._loop = self._stop = None
        self._ready.clear()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self._server = await start_server(self.settings)
        except BaseException as e:  # handed to the starting thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.stop()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return orjson.loads(response.read())

    def configure(self, model: str = "*", **fields: Any) -> dict[str, Any]:
        """Change behaviour fields for one model (``*`` = the default); also takes ``fail_next``."""
        result: dict[str, Any] = self._call("POST", "/_fake/behaviour", {"model": model, **fields})
        return result

    def set_limits(self, rpm: int | None = None, tpm: int | None = None) -> dict[str, Any]:
        """Replace both limits (None = unlimited); the buckets start full."""
        result: dict[str, Any] = self._call("POST", "/_fake/limits", {"rpm": rpm, "tpm": tpm})
        return result

    def reset(self) -> None:
        self._call("POST", "/_fake/reset", {})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_fake/stats")
        return result
