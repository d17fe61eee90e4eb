"""AWS's binary event stream (``application/vnd.amazon.eventstream``), decoded incrementally (pure).

A message is ``total length (4) | headers length (4) | prelude CRC32 (4) | headers | payload | message
CRC32 (4)``, big-endian; a header is ``name length (1) | name | value type (1) | value`` (type 7, a string,
is ``length (2) | bytes``). Bedrock's ``ConverseStream`` sends one JSON payload per event, named by the
``:event-type`` header (``messageStart``, ``contentBlockDelta``...), or an exception named by
``:exception-type`` (``throttlingException``...).

Each message comes out as one JSON object keyed by that name, as boto3 shows the stream::

    {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}

wrapped around the payload's bytes without parsing them. Messages over ``max_event`` bytes and CRCs that do
not match are refused (``UpstreamProtocol``), as soon as the prelude says so.
"""

from __future__ import annotations

import struct
import zlib

import orjson

from gateway.errors import UpstreamProtocol

_PRELUDE = 12
_VALUE_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # fixed-size header value types


class EventStreamDecoder:
    __slots__ = ("_buffer", "max_event")

    def __init__(self, max_event: int = 1024 * 1024) -> None:
        self._buffer = b""
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start, size = 0, len(data)
        while size - start >= _PRELUDE:
            total, header_length, prelude_crc = _UNPACK_PRELUDE(data, start)
            if zlib.crc32(data[start : start + 8]) != prelude_crc:
                raise UpstreamProtocol("the upstream event stream is corrupt (prelude checksum)")
            if total > self.max_event or total < _PRELUDE + 4 + header_length:
                raise UpstreamProtocol(
                    f"the upstream sent an event of {total} bytes (server.max_stream_event_bytes: {self.max_event})",
                    code="upstream_event_too_large",
                )
            end = start + total
            if size < end:
                break
            (message_crc,) = _UNPACK_CRC(data, end - 4)
            if zlib.crc32(data[start : end - 4]) != message_crc:
                raise UpstreamProtocol("the upstream event stream is corrupt (message checksum)")
            payload_at = start + _PRELUDE + header_length
            headers = _headers(data[start + _PRELUDE : payload_at])
            name = headers.get(":event-type") or headers.get(":exception-type")
            payload = data[payload_at : end - 4] or b"{}"
            if name is not None:
                events.append(b'{"' + name.encode() + b'":' + payload + b"}")
            elif headers.get(":message-type") == "error":  # the stream protocol's own failure
                code, text = headers.get(":error-code", "error"), headers.get(":error-message", "")
                events.append(b'{"streamError":' + orjson.dumps({"code": code, "message": text}) + b"}")
            start = end
        self._buffer = data[start:] if start < size else b""
        if len(self._buffer) > self.max_event:
            raise UpstreamProtocol(
                f"the upstream sent an event over {self.max_event} bytes", code="upstream_event_too_large"
            )
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of a message not yet complete (non-empty at the end of a stream means it was cut)."""
        return self._buffer


_UNPACK_PRELUDE = struct.Struct(">III").unpack_from
_UNPACK_CRC = struct.Struct(">I").unpack_from


def _headers(raw: bytes) -> dict[str, str]:
    """The string-valued headers (the only kind Bedrock's events carry that matter here)."""
    found: dict[str, str] = {}
    at, size = 0, len(raw)
    try:
        while at < size:
            length = raw[at]
            name_end = at + 1 + length
            kind = raw[name_end]
            at = name_end + 1
            if kind == 7 or kind == 6:
                value_length = (raw[at] << 8) | raw[at + 1]
                if kind == 7:
                    found[raw[name_end - length : name_end].decode()] = raw[at + 2 : at + 2 + value_length].decode()
                at += 2 + value_length
            elif kind in _VALUE_SIZES:
                at += _VALUE_SIZES[kind]
            else:
                raise UpstreamProtocol(f"the upstream event stream has a header of unknown type {kind}")
    except (IndexError, UnicodeDecodeError):
        raise UpstreamProtocol("the upstream event stream has a malformed header") from None
    return found
