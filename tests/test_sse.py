from gateway.sse import SSEDecoder, encode


def test_events_split_across_reads_are_reassembled() -> None:
    d = SSEDecoder()
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    out = [e for i in range(0, len(stream), 5) for e in d.feed(stream[i : i + 5])]
    assert out == [b'{"a":1}', b'{"b":2}', b"[DONE]"]
    assert d.pending == b""


def test_crlf_comments_and_multiline_data() -> None:
    d = SSEDecoder()
    assert d.feed(b": keep-alive\r\n\r\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n") == [b"one\ntwo"]


def test_unterminated_event_stays_pending() -> None:
    d = SSEDecoder()
    assert d.feed(b'data: {"partial"') == []
    assert d.pending == b'data: {"partial"'


def test_encode() -> None:
    assert encode(b"[DONE]") == b"data: [DONE]\n\n"


STREAM = (
    b'data: {"a":1}\n\n'
    b": keep-alive\n\n"
    b'event: message_delta\ndata: {"b":2}\n\n'
    b"data: first\r\ndata: second\r\n\r\n"
    b"id: 7\nretry: 10\n\n"
    b'data:{"c":3}\n\n\n'
    b"data: [DONE]\n\n"
)
EVENTS = [b'{"a":1}', b'{"b":2}', b"first\nsecond", b'{"c":3}', b"[DONE]"]


def _fed(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    assert decoder.pending == b""
    return events


def test_every_split_of_a_stream_decodes_to_the_same_events() -> None:
    assert _fed([STREAM]) == EVENTS
    assert _fed([STREAM[i : i + 1] for i in range(len(STREAM))]) == EVENTS
    for cut in range(1, len(STREAM)):
        assert _fed([STREAM[:cut], STREAM[cut:]]) == EVENTS, cut
