"""Embeddings: parse a request and build a CreateEmbeddingResponse with deterministic vectors. Pure.

The same (model, input) always gives the same unit vector; ``dimensions`` keeps a prefix of the
full vector and re-normalises it, which is how OpenAI shortens text-embedding-3 vectors.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.fake import errors
from gateway.fake.generate import rng_for, unit_vector

NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_DIMENSIONS = 1536

Item = str | list[int]


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[Item, ...]
    dimensions: int | None = None
    encoding_format: str = "float"


def _items(value: Any) -> tuple[Item, ...]:
    def is_tokens(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)

    if isinstance(value, str):
        return (value,)
    if is_tokens(value):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) or is_tokens(v) for v in value):
        return tuple(value)
    message = "'input' must be a string, an array of strings, an array of tokens or an array of token arrays."
    raise errors.invalid_request(message, "input")


def parse_embedding_request(body: Any, deployment: str | None = None) -> EmbeddingRequest:
    model = errors.model_of(body, deployment)
    if body.get("input") is None:
        raise errors.missing_param("input")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
        raise errors.invalid_type("dimensions", "an integer", dimensions)
    if dimensions is not None and dimensions < 1:
        raise errors.below_minimum("dimensions", 1, dimensions)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        message = f"Invalid value for 'encoding_format': expected 'float' or 'base64', got '{encoding}'."
        raise errors.invalid_request(message, "encoding_format", "invalid_value")
    return EmbeddingRequest(model, _items(body["input"]), dimensions, encoding)


def vector(model: str, item: Item, dimensions: int | None) -> list[float]:
    native = NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    full = unit_vector(rng_for("embedding", model, item), max(native, dimensions or 0))
    if dimensions is None or dimensions == len(full):
        return full
    prefix = full[:dimensions]
    norm = math.sqrt(sum(x * x for x in prefix)) or 1.0
    return [x / norm for x in prefix]


def encode_base64(values: list[float]) -> str:
    """Little-endian float32, as OpenAI sends (and the openai SDK decodes) ``encoding_format=base64``."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def embedding_body(request: EmbeddingRequest, count_tokens: Callable[[Item], int]) -> dict[str, Any]:
    """A CreateEmbeddingResponse; ``count_tokens`` gives the prompt tokens of one input."""
    data = []
    for index, item in enumerate(request.inputs):
        values = vector(request.model, item, request.dimensions)
        encoded: list[float] | str = encode_base64(values) if request.encoding_format == "base64" else values
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(item) for item in request.inputs)
    return {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
