"""Deterministic model output: words, JSON that fits a schema, tool arguments, log probabilities.

Every function takes a seeded ``random.Random`` so the same request always gets the same answer.
One generated piece stands for one completion token.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

import orjson

_WORDS = (
    "the quick brown fox jumps over a lazy dog while seven bright stars drift above quiet hills "
    "and every river finds its way to the sea because water always knows where it should go "
    "under silver clouds near green fields of tall grass"
).split()


def rng_for(*parts: object) -> random.Random:
    """A generator seeded by a stable digest of the parts (``hash()`` is salted per process)."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def words(rng: random.Random, count: int, sentence: bool) -> list[str]:
    """``count`` pieces of prose; a ``sentence`` ends with a full stop (a natural end)."""
    if count <= 0:
        return []
    body = count - 1 if sentence else count
    pieces = [rng.choice(_WORDS) if i == 0 else " " + rng.choice(_WORDS) for i in range(body)]
    if pieces:
        pieces[0] = pieces[0].capitalize()
    if sentence:
        pieces.append("." if pieces else "Done.")
    return pieces


def split_pieces(text: str, size: int = 4) -> list[str]:
    """Cut text into pieces of about one token each (OpenAI averages four characters a token)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def json_object_pieces(rng: random.Random, count: int) -> list[str]:
    """A valid JSON object in exactly ``count`` pieces (at least one)."""
    if count <= 3:
        return [["{}"], ["{", "}"], ["{", " ", "}"]][max(count, 1) - 1]
    # '{"' 'answer' '":"' ... '"}' frame the words, so the text is always valid JSON
    inner = [w.replace('"', "") for w in words(rng, count - 4, sentence=False)]
    return ['{"', "answer", '":"', *inner, '"}']


def value_for_schema(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value that satisfies the common JSON Schema keywords (type, properties, enum, items...)."""
    if not isinstance(schema, dict) or depth > 6:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return value_for_schema(schema[key][0], rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: value_for_schema(sub, rng, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [value_for_schema(schema.get("items", {"type": "string"}), rng, depth + 1)]
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 100)))
    if kind == "number":
        return round(rng.uniform(float(schema.get("minimum", 0)), float(schema.get("maximum", 100))), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return "".join(words(rng, 2, sentence=False))


def schema_pieces(schema: Any, rng: random.Random) -> list[str]:
    value = value_for_schema(schema, rng)
    return split_pieces(orjson.dumps(value if value is not None else {}).decode())


def tool_call_id(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "call_" + "".join(rng.choice(alphabet) for _ in range(24))


def token_logprob(piece: str, rng: random.Random, top: int) -> dict[str, Any]:
    """One ChatCompletionTokenLogprob; the chosen token is the most likely of the top list."""
    best = -rng.uniform(0.0001, 0.7)
    alternatives = [(piece, best)]
    for rank in range(1, top):
        alternatives.append((rng.choice(_WORDS), best - rank - rng.random()))
    return {
        "token": piece,
        "logprob": best,
        "bytes": list(piece.encode()),
        "top_logprobs": [
            {"token": token, "logprob": value, "bytes": list(token.encode())} for token, value in alternatives[:top]
        ],
    }


def unit_vector(rng: random.Random, dimensions: int) -> list[float]:
    """A random direction with unit length, as OpenAI's embeddings are normalised."""
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
