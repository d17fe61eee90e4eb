"""What a request costs, in USD, from its usage and its deployment's price (pure; the one home of pricing).

Usage is read in OpenAI's shape, which every adapter produces::

    {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
     "prompt_tokens_details": {"cached_tokens": 1000},
     "completion_tokens_details": {"reasoning_tokens": 120}}

- ``prompt_tokens`` counts every input token, cached ones included (OpenAI's convention): those read from the
  provider's prompt cache (``prompt_tokens_details.cached_tokens``) cost ``Price.cache_read``, those written
  to it (``prompt_tokens_details.cache_creation_tokens`` or ``cache_write_tokens``, or ``usage.
  cache_creation_input_tokens`` as Anthropic names them) cost ``Price.cache_write``, the rest the input
  price. Where a provider reports the cached tokens beside ``prompt_tokens`` rather than inside it (their
  sum exceeds it), they are added to it instead.
- ``completion_tokens`` includes reasoning tokens, priced as output; a provider that reports reasoning
  beside the completion (``total_tokens`` counts it on top) has it added.
- Embeddings report prompt tokens only.

A price missing for cached or written tokens is the input price (``config.model.Price``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.config.model import Price


@dataclass(init=False, unsafe_hash=True)
class Tokens:
    """One answer's tokens by how they are priced."""

    input: Final[int]  # prompt tokens at the input price
    cached: Final[int]  # read from the provider's prompt cache
    written: Final[int]  # written to the provider's prompt cache
    output: Final[int]  # completion tokens, reasoning included

    def __init__(self, input: int, cached: int, written: int, output: int) -> None:
        self.input = input
        self.cached = cached
        self.written = written
        self.output = output


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _details(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    return value if isinstance(value, dict) else {}


def tokens_of(usage: Any) -> Tokens | None:
    """The priced tokens of an OpenAI-shaped usage object; None when it is not one.

    >>> tokens_of({"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1000}})
    Tokens(input=200, cached=1000, written=0, output=300)
    >>> tokens_of({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 27,
    ...            "completion_tokens_details": {"reasoning_tokens": 12}})
    Tokens(input=10, cached=0, written=0, output=17)
    """
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not isinstance(prompt, int) or isinstance(prompt, bool):
        return None
    prompt, completion = _count(prompt), _count(usage.get("completion_tokens"))
    details = _details(usage, "prompt_tokens_details")
    cached = _count(details.get("cached_tokens"))
    written = _count(
        details.get("cache_creation_tokens")
        or details.get("cache_write_tokens")
        or usage.get("cache_creation_input_tokens")
    )
    uncached = prompt - cached - written if cached + written <= prompt else prompt
    reasoning = _count(_details(usage, "completion_tokens_details").get("reasoning_tokens"))
    total = usage.get("total_tokens")
    beside = reasoning > 0 and isinstance(total, int) and total == prompt + completion + reasoning
    return Tokens(uncached, cached, written, completion + (reasoning if beside else 0))


def cost(tokens: Tokens, price: Price) -> float:
    """
    >>> cost(Tokens(200, 1000, 0, 300), Price(input=2.5e-6, output=10e-6, cache_read=1.25e-6))
    0.00475
    """
    read = price.input if price.cache_read is None else price.cache_read
    write = price.input if price.cache_write is None else price.cache_write
    return tokens.input * price.input + tokens.cached * read + tokens.written * write + tokens.output * price.output


def usage_cost(usage: Any, price: Price) -> float | None:
    """The cost of an answer from its reported usage; None when the usage is not an OpenAI usage object."""
    tokens = tokens_of(usage)
    return None if tokens is None else cost(tokens, price)


def usage_object(body: bytes) -> Any:
    """The ``usage`` object of an OpenAI-shaped JSON answer, read without parsing the rest of it (usage
    comes last in OpenAI's answers); None when there is none.

    >>> usage_object(b'{"choices": [], "usage": {"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}}}')
    {'prompt_tokens': 3, 'prompt_tokens_details': {'cached_tokens': 2}}
    """
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    rest = body[at + 7 :].lstrip()
    if not rest.startswith(b":"):
        return None
    try:
        found, _ = _JSON.raw_decode(rest[1:].lstrip().decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return found


_JSON = json.JSONDecoder()


def answer_cost(body: bytes, prompt: int, completion: int, price: Price) -> float:
    """A JSON answer's cost from its usage. Its prompt and completion counts (already read) price it exactly
    unless cached or written tokens have prices of their own or reasoning may be reported beside the
    completion; only then is the usage object read in full."""
    if price.cache_read is None and price.cache_write is None and b"reasoning_tokens" not in body:
        return estimate(prompt, completion, price)
    found = usage_cost(usage_object(body), price)
    return estimate(prompt, completion, price) if found is None else found


def estimate(prompt: int, completion: int, price: Price) -> float:
    """A cost from counted or estimated tokens, all at the plain input and output prices (no cache is known):
    what a request without a usage report is charged, and at most what admission reserved for it."""
    # conditionals, not max(): this runs for every candidate of every request with budgets (a third of the time)
    return (prompt if prompt > 0 else 0) * price.input + (completion if completion > 0 else 0) * price.output


def max_cost(price: Price | None, prompt: int, output: int) -> float:
    """What a request may cost at most on a deployment: its prompt estimate at the input price plus its
    output cap at the output price (cache reads only make it cheaper; a cache write priced above input
    may exceed it, and is charged when it happens). An unpriced deployment costs 0 (budgets require prices).

    >>> max_cost(Price(input=1e-6, output=4e-6), 1000, 500)
    0.003
    """
    return 0.0 if price is None else estimate(prompt, output, price)


def header(usd: float, estimated: bool) -> str:
    """``x-gateway-cost-usd``: six decimals, ``~`` before an estimate.

    >>> header(0.0000424, False), header(0.01, True)
    ('0.000042', '~0.010000')
    """
    return f"{'~' if estimated else ''}{usd:.6f}"
