"""A provider's answer being read: its pool slot, its body or stream, each within its bounds.

Bounds (``server.*``): a body over ``max_response_bytes``, an SSE event over ``max_stream_event_bytes``, a
stream over ``max_stream_bytes`` and a 2xx that is not what was asked for are ``UpstreamProtocol`` failures.
Sizes count inflated bytes: aiohttp inflates a compressed body piece by piece as it is read, so a gzip bomb
costs what the bound allows, and reading yields to the event loop every ``_YIELD_EVERY`` bytes, so inflating
never holds the loop (or the attempt's timeout) for long. A cancelled caller closes its connection at once
(aiohttp drops rather than reuses a connection whose response was not read to the end).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from gateway.config.model import Deployment
from gateway.errors import UpstreamConnection, UpstreamError, UpstreamProtocol, UpstreamTimeout, redact, redact_bytes
from gateway.providers.base import Provider, SdkAnswer, StreamTranslator
from gateway.time_limit import time_limit
from gateway.types import Batches

_YIELD_EVERY = 1024 * 1024  # bytes read back to back (an inflating body never waits) between yields


@dataclass(frozen=True)
class Rules:
    """What a provider's answer may be, and what reading its errors needs."""

    max_body: int
    max_event: int
    max_stream: int
    max_retry_after: float
    secrets: tuple[str, ...]


class Slot:
    """A place in an account's connection pool, given back exactly once, by whoever holds it last."""

    __slots__ = ("_pool",)

    def __init__(self, pool: asyncio.Semaphore) -> None:
        self._pool: asyncio.Semaphore | None = pool

    def release(self) -> None:
        if self._pool is not None:
            self._pool.release()
            self._pool = None


@dataclass(eq=False)
class Exchange:
    """An upstream response whose headers have arrived; the body is read with ``json``, ``read`` or ``batches``.
    It holds its pool slot until the body is read or the exchange closed."""

    response: aiohttp.ClientResponse
    deadline: float
    idle: float
    rules: Rules
    slot: Slot
    provider: Provider  # whose framing a stream has

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    async def json(self) -> bytes:
        """The body of an answer that must be a JSON object. Only its shape is checked here (content type,
        first and last byte): the one parse happens later, where usage is read."""
        body = await self.read()
        content_type = self.response.headers.get("content-type", "application/json")
        if "json" not in content_type.lower() or not _json_object(body):
            raise UpstreamProtocol(
                f"the upstream answered {self.response.status} with a body that is not a JSON object "
                f"({self._quoted(content_type)}, {len(body)} bytes)"
            )
        return body

    async def read(self) -> bytes:
        """The whole body, up to ``max_body`` bytes. Providers send non-streamed answers at once, so a gap
        longer than the idle timeout means a stalled upstream, not a slow one."""
        content, limit = self.response.content, self.rules.max_body
        pieces: list[bytes] = []
        size = unyielded = 0
        complete = False
        try:
            with time_limit(min(self.deadline - time.monotonic(), self.idle)):
                while piece := await content.readany():
                    size += len(piece)
                    if size > limit:
                        raise UpstreamProtocol(
                            f"the upstream answer is over {limit} bytes (server.max_response_bytes)",
                            code="upstream_response_too_large",
                        )
                    pieces.append(piece)
                    unyielded += len(piece)
                    if unyielded >= _YIELD_EVERY:
                        unyielded = 0
                        await asyncio.sleep(0)
            complete = True
        except TimeoutError:
            raise UpstreamTimeout("the upstream response did not complete in time") from None
        except aiohttp.ClientError as e:
            raise broken(e, "mid-response") from None
        finally:
            if complete:
                self.release()
            else:
                self.close()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def batches(self) -> Batches:
        """The stream's events as they arrive, framed as the provider frames them (SSE data payloads, for
        most), a list (never empty) of those that came in one read; raises UpstreamError if the stream
        breaks, idles or outgrows its bounds. Error events pass through redacted of every configured secret."""
        rules = self.rules
        decoder = self.provider.decoder(rules.max_event)
        content = self.response.content
        loop = asyncio.get_running_loop()
        mono_to_loop = loop.time() - time.monotonic()
        total = unyielded = 0
        try:
            expected = self.provider.stream_type
            content_type = self.response.headers.get("content-type", expected)
            if expected not in content_type.lower():
                raise UpstreamProtocol(f"the upstream answered a stream request with {self._quoted(content_type)}")
            async with asyncio.timeout(None) as timer:
                while True:
                    now = time.monotonic()
                    timer.reschedule(min(self.deadline, now + self.idle) + mono_to_loop)
                    chunk = await content.readany()
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > rules.max_stream:
                        raise UpstreamProtocol(
                            f"the upstream stream is over {rules.max_stream} bytes (server.max_stream_bytes)",
                            code="upstream_stream_too_large",
                        )
                    if events := decoder.feed(chunk):
                        yield [redact_bytes(e, rules.secrets) if b'"error"' in e else e for e in events]
                    unyielded += len(chunk)
                    if unyielded >= _YIELD_EVERY:
                        unyielded = 0
                        await asyncio.sleep(0)
        except TimeoutError:
            raise UpstreamTimeout("the upstream stream went idle or ran past its deadline") from None
        except aiohttp.ClientError as e:
            raise broken(e, "mid-stream") from None
        finally:
            self.close()
        if decoder.pending.strip():
            raise UpstreamConnection("the upstream stream ended in the middle of an event")

    def answer_events(self, deployment: Deployment) -> Batches:
        """The stream as OpenAI chunk payloads, in lists of those that arrived together (``batches``, so that
        they can be sent on together): the events themselves for an OpenAI-compatible provider, else what its
        translator makes of each, as they arrive (never buffered to the end)."""
        if self.provider.stream is None:
            return self.batches()
        return self._translated(self.provider.stream(deployment))

    async def _translated(self, translator: StreamTranslator) -> Batches:
        batches = self.batches()
        try:
            async for batch in batches:
                chunks: list[bytes] = []
                try:
                    for event in batch:
                        chunks += translator.feed(event)
                except Exception:  # the stream failed at this event: what came before it is relayed first
                    if chunks:
                        yield chunks
                    raise
                if chunks:
                    yield chunks
            if chunks := list(translator.finish()):
                yield chunks
        finally:
            await batches.aclose()

    def release(self) -> None:
        """Done with a body read to its end: the connection goes back to the pool."""
        self.response.release()
        self.slot.release()

    def close(self) -> None:
        self.response.close()
        self.slot.release()

    def _quoted(self, value: str) -> str:
        """A header value fit for an error message: the provider chose it, so it may hold anything."""
        return repr(redact(value[:100], self.rules.secrets))

    def _loop_deadline(self, within: float) -> float:
        remaining = min(self.deadline - time.monotonic(), within)
        return asyncio.get_running_loop().time() + remaining


class SdkExchange(Exchange):
    """An answer from a provider reached through a library (``Provider.sdk``: litellm) rather than HTTP the
    gateway speaks: read as an HTTP exchange is (``json``, ``batches``), under the same deadline, idle timeout
    and size bounds, holding its pool slot until read or closed. The library has already translated it."""

    def __init__(
        self, answer: SdkAnswer, deadline: float, idle: float, rules: Rules, slot: Slot, provider: Provider
    ) -> None:
        # Not an HTTP exchange: ``response`` stays unset and every method that would read it is overridden.
        self.answer = answer
        self.deadline = deadline
        self.idle = idle
        self.rules = rules
        self.slot = slot
        self.provider = provider

    @property
    def headers(self) -> Mapping[str, str]:
        return self.answer.headers

    async def json(self) -> bytes:
        return await self.read()

    async def read(self) -> bytes:
        body = self.answer.body
        self.close()
        if body is None:
            raise UpstreamProtocol("the provider's library answered a JSON request with a stream")
        if len(body) > self.rules.max_body:
            raise UpstreamProtocol(
                f"the upstream answer is over {self.rules.max_body} bytes (server.max_response_bytes)",
                code="upstream_response_too_large",
            )
        return body

    async def batches(self) -> Batches:
        events = self.answer.events
        if events is None:
            self.close()
            raise UpstreamProtocol("the provider's library answered a stream request with a JSON body")
        total = 0
        try:
            async with asyncio.timeout(None) as timer:
                while True:
                    timer.reschedule(self._loop_deadline(self.idle))
                    try:
                        event = await events.__anext__()
                    except StopAsyncIteration:
                        break
                    total += len(event)
                    if len(event) > self.rules.max_event or total > self.rules.max_stream:
                        raise UpstreamProtocol(
                            "the upstream stream is over its bounds (server.max_stream_event_bytes, max_stream_bytes)",
                            code="upstream_stream_too_large",
                        )
                    yield [redact_bytes(event, self.rules.secrets) if b'"error"' in event else event]
        except TimeoutError:
            raise UpstreamTimeout("the upstream stream went idle or ran past its deadline") from None
        finally:
            await events.aclose()  # cancels the library's request, whatever ended the stream
            self.close()

    def release(self) -> None:
        self.slot.release()

    def close(self) -> None:
        self.slot.release()


def _json_object(body: bytes) -> bool:
    """Pure: starts with ``{`` and ends with ``}`` (around whitespace); a cheap shape check, no parse."""
    return body[:64].lstrip()[:1] == b"{" and body[-64:].rstrip()[-1:] == b"}"


def broken(error: aiohttp.ClientError, when: str) -> UpstreamError:
    name = type(error).__name__
    if isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return UpstreamConnection(f"the upstream connection failed {when} ({name})")
    return UpstreamProtocol(f"the upstream broke HTTP {when} ({name})")  # e.g. a bad status or header line
