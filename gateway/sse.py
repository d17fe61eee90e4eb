"""Server-sent events framing (pure): upstream bytes in arbitrary pieces -> complete event payloads.

>>> d = SSEDecoder()
>>> d.feed(b'data: {"a":1}\\n\\nda')
[b'{"a":1}']
>>> d.feed(b'ta: [DONE]\\n\\n')
[b'[DONE]']
"""

from __future__ import annotations

DONE = b"[DONE]"


class SSEDecoder:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) != -1:
            payload = _data(buffer[start:end])
            if payload is not None:
                events.append(payload)
            start = end + 2
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated (non-empty at end of stream means it was cut)."""
        return self._buffer


def _data(block: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event; comments, ids and retry fields carry nothing we relay."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]
    lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def encode(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
