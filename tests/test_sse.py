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
