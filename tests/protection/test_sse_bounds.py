"""SSE framing against hostile input: linear time whatever the pieces, and a bound on one event's size."""

from __future__ import annotations

import random
import time

import pytest

from gateway.errors import UpstreamProtocol
from gateway.sse import SSEDecoder

MB = 1 << 20


def reference(stream: bytes) -> tuple[list[bytes], bytes]:
    """What the stream means, decoded at once: the events' data and the unterminated rest."""
    text = stream.replace(b"\r\n", b"\n")
    *blocks, rest = text.split(b"\n\n")
    events = []
    for block in blocks:
        lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
        if lines:
            events.append(b"\n".join(lines))
    return events, rest


def test_an_event_without_end_costs_linear_time() -> None:
    """64 MB of one event in 64 KB reads took 37 s (each read re-joined and re-scanned the whole buffer)."""
    decoder = SSEDecoder(max_event=128 * MB)
    piece = b"data: " + b"y" * (64 * 1024 - 6)
    started = time.process_time()
    for _ in range(1024):
        assert decoder.feed(piece) == []
    assert decoder.feed(b"\n\n") == [piece[6:] + piece * 1023]
    assert time.process_time() - started < 2.0


def test_an_event_over_the_bound_is_refused_as_soon_as_it_is_too_large() -> None:
    decoder = SSEDecoder(max_event=MB)
    decoder.feed(b'data: {"ok":1}\n\n')
    with pytest.raises(UpstreamProtocol) as raised:
        for _ in range(100):
            decoder.feed(b"data: " + b"y" * (64 * 1024))
    assert raised.value.code == "upstream_event_too_large"
    whole = SSEDecoder(max_event=MB)
    with pytest.raises(UpstreamProtocol):  # arriving complete in one read changes nothing
        whole.feed(b"data: " + b"y" * (2 * MB) + b"\n\n")


def test_events_up_to_the_bound_pass() -> None:
    decoder = SSEDecoder(max_event=MB)
    event = b"data: " + b"y" * (MB - 6)
    assert decoder.feed(event[:1000]) == []
    assert decoder.feed(event[1000:] + b"\n\n") == [event[6:]]


@pytest.mark.parametrize("seed", range(30))
def test_any_split_decodes_like_the_whole(seed: int) -> None:
    """Boundaries and CRLFs cut anywhere (``\\r`` | ``\\n``, ``\\n`` | ``\\n``) decode as the stream at once."""
    rng = random.Random(seed)
    parts = [b"data: one\r\n\r\n", b": ping\n\n", b"event: x\ndata: a\ndata: b\n\n", b"data: [DONE]\r\n\r\n"]
    parts += [b"id: 7\r\ndata: " + bytes(rng.choice(b"ab{}: ") for _ in range(rng.randint(0, 40))) + b"\n\n"]
    stream = b"".join(rng.choice(parts) for _ in range(20)) + b"data: cut"
    cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 25)))
    decoder = SSEDecoder()
    out = [e for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) for e in decoder.feed(stream[a:b])]
    assert (out, decoder.pending) == reference(stream)
