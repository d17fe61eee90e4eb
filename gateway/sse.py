"""Server-sent events framing (pure): upstream bytes in arbitrary pieces -> complete event payloads.

>>> d = SSEDecoder()
>>> d.feed(b'data: {"a":1}\\n\\nda')
[b'{"a":1}']
>>> d.feed(b'ta: [DONE]\\n\\n')
[b'[DONE]']

Linear in the input whatever its pieces: each byte is searched once for an event boundary and the pieces
of an unfinished event are joined once, when it ends (joining and rescanning the whole buffer on every
read took 37 s for one 64 MB event in 64 KB reads). An event larger than ``max_event`` bytes is refused
as soon as it is, so a provider that never ends one costs that much memory and no more.
"""

from __future__ import annotations

from gateway.errors import UpstreamProtocol

DONE = b"[DONE]"
MAX_EVENT = 1024 * 1024  # server.max_stream_event_bytes' default


class SSEDecoder:
    __slots__ = ("_parts", "_size", "_cr", "max_event")

    def __init__(self, max_event: int = MAX_EVENT) -> None:
        self._parts: list[bytes] = []  # the unfinished event's pieces, joined only once it ends
        self._size = 0
        self._cr = False  # the last piece ended in "\r": perhaps the first half of "\r\n"
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[bytes]:
        """The payloads of the events ``chunk`` completes; raises UpstreamProtocol for an event too large."""
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        start = 0
        if self._parts:
            if chunk[:1] == b"\n" and self._parts[-1].endswith(b"\n"):  # "\n" | "\n": ends at the seam
                block, start = b"".join(self._parts)[:-1], 1
            else:
                end = chunk.find(b"\n\n")
                if end == -1:
                    self._hold(chunk)
                    return events
                block, start = b"".join(self._parts) + chunk[:end], end + 2
            self._parts, self._size = [], 0
            self._emit(block, events)
        blocks = (chunk[start:] if start else chunk).split(b"\n\n")  # the last: an event not ended yet
        for block in blocks[:-1]:
            if len(block) > self.max_event:
                raise _too_large(self.max_event)
            if block.startswith(b"data: ") and b"\n" not in block:  # one data line: nearly every event
                events.append(block[6:])
            elif (payload := _data(block)) is not None:
                events.append(payload)
        self._hold(blocks[-1])
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated (non-empty at end of stream means it was cut)."""
        return b"".join(self._parts) + (b"\r" if self._cr else b"")

    def _hold(self, piece: bytes) -> None:
        if piece:
            self._size += len(piece)
            if self._size > self.max_event:
                raise _too_large(self.max_event)
            self._parts.append(piece)

    def _emit(self, block: bytes, events: list[bytes]) -> None:
        if len(block) > self.max_event:
            raise _too_large(self.max_event)
        payload = _data(block)
        if payload is not None:
            events.append(payload)


def _too_large(limit: int) -> UpstreamProtocol:
    return UpstreamProtocol(
        f"the upstream sent a stream event over {limit} bytes (server.max_stream_event_bytes)",
        code="upstream_event_too_large",
    )


def _data(block: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event; comments, ids and retry fields carry nothing we relay. (An
    event of one ``data: `` line, nearly every one, is read where events are split.)"""
    if block.startswith(b"event: "):  # "event: name\ndata: {...}" (Anthropic's): the name is in the data too
        start = block.find(b"\ndata: ")
        if start != -1 and block.find(b"\n", start + 1) == -1:
            return block[start + 7 :]
    lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def encode(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
