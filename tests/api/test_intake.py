import os
import re
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from gateway.api.intake import (
    RequestHeaders,
    check_chat,
    check_embeddings,
    parse_object,
    read_body,
    reject_steering,
    request_id,
)
from gateway.errors import ForbiddenField, InvalidRequest, PayloadTooLarge


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "custom_llm_provider", "extra_headers"])
def test_top_level_steering_fields_are_refused(field: str) -> None:
    with pytest.raises(ForbiddenField) as info:
        reject_steering({"model": "m", field: "http://evil.example"})
    assert info.value.param == field and info.value.status == 400


def test_steering_inside_extra_body_is_refused() -> None:
    with pytest.raises(ForbiddenField) as info:
        reject_steering({"model": "m", "extra_body": {"api_base": "http://evil.example"}})
    assert info.value.param == "extra_body.api_base"


def test_metadata_is_free_form_tagging() -> None:
    reject_steering({"model": "m", "metadata": {"project": "checkout", "endpoint": "/cart", "proxy": "edge-1"}})


def test_user_content_that_mentions_steering_words_passes() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string"}},
            },
        },
    }
    reject_steering(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "api_key base_url"}],
            "tools": [tool],
            "metadata": {"task": "simple"},
        }
    )


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_bad_bodies(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_object(raw)


@pytest.mark.parametrize(
    "body,param",
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages"),
        ({"model": "m", "messages": [{}], "stream": "yes"}, "stream"),
    ],
)
def test_chat_required_fields(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_chat(body)
    assert info.value.param == param


def test_embeddings_need_input() -> None:
    with pytest.raises(InvalidRequest) as info:
        check_embeddings({"model": "e"})
    assert info.value.param == "input"
    assert check_embeddings({"model": "e", "input": ["a"]}) == "e"


def _headers(headers: dict[str, str]) -> RequestHeaders:
    return RequestHeaders([(k.encode(), v.encode()) for k, v in headers.items()])


def test_request_ids_are_fresh_random_and_a_clients_own_is_kept() -> None:
    ids = [request_id(_headers({})) for _ in range(1_000)]  # several draws from the OS
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)
    assert request_id(_headers({"x-request-id": "trace-42"})) == "trace-42"
    assert request_id(_headers({"x-request-id": "x" * 129})).startswith("req_")  # too long: one is made


def test_a_forked_worker_does_not_repeat_its_parents_request_ids() -> None:
    request_id(_headers({}))  # the parent holds unused ids from its last draw
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        os.write(writer, request_id(_headers({})).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    with os.fdopen(reader) as pipe:
        childs = pipe.read()
    assert childs.startswith("req_") and childs != request_id(_headers({}))


RAW = [(b"authorization", b"Bearer a"), (b"x-tag", b"caf\xe9"), (b"authorization", b"Bearer b")]


def test_request_headers_read_as_starlettes_do() -> None:
    ours, theirs = RequestHeaders(RAW), Headers(raw=RAW)
    for name in ("authorization", "x-tag", "x-missing"):
        assert ours.get(name) == theirs.get(name)  # a repeated name: its first value; latin-1 decoded
        assert (name in ours) == (name in theirs)
    assert ours.get("x-missing", "none") == "none"
    assert sorted(ours) == ["authorization", "x-tag"] and len(ours) == 2
    with pytest.raises(KeyError):
        ours["x-missing"]


def _receiving(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def test_a_body_is_read_whole_and_bounded() -> None:
    parts = _receiving(
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"1}"},
    )
    assert await read_body(parts, {}, 100) == b'{"a":1}'
    with pytest.raises(PayloadTooLarge, match="request body is 101 bytes"):  # refused before reading
        await read_body(_receiving(), {"content-length": "101"}, 100)
    over = _receiving(
        {"type": "http.request", "body": b"x" * 60, "more_body": True}, {"type": "http.request", "body": b"x" * 60}
    )
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 100 bytes"):  # no length given: counted
        await read_body(over, {}, 100)


async def test_a_client_gone_mid_upload_is_a_client_disconnect() -> None:
    gone = _receiving({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        await read_body(gone, {}, 100)
