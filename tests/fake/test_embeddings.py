import base64
import math
import struct

import pytest

from gateway.fake.embeddings import embedding_body, parse_embedding_request, vector
from gateway.fake.errors import RequestError


def test_vectors_are_deterministic_unit_vectors() -> None:
    a = vector("text-embedding-3-small", "hello", None)
    assert len(a) == 1536
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-9)
    assert a == vector("text-embedding-3-small", "hello", None)
    assert a != vector("text-embedding-3-small", "hellO", None)
    assert len(vector("text-embedding-3-large", "hello", None)) == 3072


def test_dimensions_keep_a_renormalised_prefix() -> None:
    full = vector("text-embedding-3-small", "x", None)
    short = vector("text-embedding-3-small", "x", 4)
    norm = math.sqrt(sum(x * x for x in full[:4]))
    assert short == pytest.approx([x / norm for x in full[:4]])


def test_base64_is_little_endian_float32() -> None:
    request = parse_embedding_request(
        {"model": "m", "input": ["a", [1, 2, 3]], "encoding_format": "base64", "dimensions": 3}
    )
    body = embedding_body(request, lambda item: len(item))
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    raw = base64.b64decode(body["data"][1]["embedding"])
    assert struct.unpack("<3f", raw) == pytest.approx(vector("m", [1, 2, 3], 3), abs=1e-6)
    assert [d["index"] for d in body["data"]] == [0, 1]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"input": "x"},
        {"model": "m", "input": []},
        {"model": "m", "input": [1.5]},
        {"model": "m", "input": "x", "dimensions": 0},
        {"model": "m", "input": "x", "encoding_format": "hex"},
    ],
)
def test_invalid_requests(body: dict[str, object]) -> None:
    with pytest.raises(RequestError) as caught:
        parse_embedding_request(body)
    assert caught.value.status == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_azure_deployment_names_the_model() -> None:
    assert parse_embedding_request({"input": "x"}, deployment="ada").model == "ada"
