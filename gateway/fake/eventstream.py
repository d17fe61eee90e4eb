"""Writing AWS's binary event stream (``application/vnd.amazon.eventstream``), as Bedrock sends it (pure).

The gateway reads it with ``providers.bedrock.eventstream``; tests read the fake's frames with botocore's
own parser too, so the two cannot agree on a mistake.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One message whose headers are all strings (type 7)."""
    encoded = b"".join(
        struct.pack(">B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
        for name, value in ((n, v) for n, v in headers.items())
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event(kind: str, body: dict[str, Any]) -> bytes:
    """A ConverseStream event (``messageStart``, ``contentBlockDelta``...) with its JSON payload."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(body))


def exception(kind: str, message: str) -> bytes:
    """An exception in the stream (``throttlingException``...), as Bedrock sends one after its 200."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, orjson.dumps({"message": message}))
