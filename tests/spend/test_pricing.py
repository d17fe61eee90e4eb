"""Pricing against hand-computed values: cached input, cache writes, reasoning, embeddings, estimates."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config.model import Price
from gateway.spend.pricing import Tokens, answer_cost, estimate, header, max_cost, tokens_of, usage_cost, usage_object

M = 1e-6  # prices are configured per million tokens: USD per token
GPT_4O = Price(input=2.5 * M, output=10 * M, cache_read=1.25 * M)
CLAUDE = Price(input=3 * M, output=15 * M, cache_read=0.3 * M, cache_write=3.75 * M)
PLAIN = Price(input=0.15 * M, output=0.6 * M)


@pytest.mark.parametrize(
    ("usage", "price", "usd"),
    [
        # 200 uncached x 2.50 + 1000 cached x 1.25 + 300 out x 10, per million
        (
            {"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1000}},
            GPT_4O,
            0.0005 + 0.00125 + 0.003,
        ),
        # 500 uncached x 3 + 3000 read x 0.30 + 1500 written x 3.75 + 400 out x 15, per million
        (
            {
                "prompt_tokens": 5000,
                "completion_tokens": 400,
                "prompt_tokens_details": {"cached_tokens": 3000, "cache_creation_tokens": 1500},
            },
            CLAUDE,
            0.0015 + 0.0009 + 0.005625 + 0.006,
        ),
        # Anthropic's own name for cache writes, at the usage's top level
        (
            {"prompt_tokens": 2000, "completion_tokens": 0, "cache_creation_input_tokens": 2000},
            CLAUDE,
            2000 * 3.75 * M,
        ),
        # cached tokens without a price of their own cost the input price
        (
            {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 900}},
            PLAIN,
            1000 * 0.15 * M + 100 * 0.6 * M,
        ),
        # reasoning inside completion_tokens (OpenAI's convention: total = prompt + completion)
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 500,
                "total_tokens": 510,
                "completion_tokens_details": {"reasoning_tokens": 400},
            },
            GPT_4O,
            10 * 2.5 * M + 500 * 10 * M,
        ),
        # reasoning reported beside it (total counts it on top): output priced for both
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 100,
                "total_tokens": 510,
                "completion_tokens_details": {"reasoning_tokens": 400},
            },
            GPT_4O,
            10 * 2.5 * M + 500 * 10 * M,
        ),
        # embeddings: prompt tokens only
        ({"prompt_tokens": 8, "total_tokens": 8}, Price(input=0.02 * M, output=0.0), 8 * 0.02 * M),
        # a free deployment
        ({"prompt_tokens": 8000, "completion_tokens": 900}, Price(input=0.0, output=0.0), 0.0),
    ],
    ids=["openai-cached", "anthropic-read-and-write", "cache-write-top-level", "cache-at-input-price",
         "reasoning-inside", "reasoning-beside", "embeddings", "free"],
)  # fmt: skip
def test_hand_computed_costs(usage: dict[str, Any], price: Price, usd: float) -> None:
    assert usage_cost(usage, price) == pytest.approx(usd, rel=1e-12)


def test_cached_tokens_reported_beside_the_prompt_are_added_to_it() -> None:
    assert tokens_of({"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 200}}) == Tokens(100, 200, 0, 0)


@pytest.mark.parametrize(
    "usage",
    [None, "x", [], {}, {"prompt_tokens": "5"}, {"completion_tokens": 3}, {"prompt_tokens": True}],
)
def test_what_is_not_a_usage_object_prices_nothing(usage: Any) -> None:
    assert usage_cost(usage, PLAIN) is None


def test_nonsense_counts_count_as_none() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": -5, "prompt_tokens_details": {"cached_tokens": "all"}}
    assert tokens_of(usage) == Tokens(10, 0, 0, 0)


def answer(usage: Any) -> bytes:
    return orjson.dumps({"id": "x", "choices": [{"message": {"content": '"usage": {}'}}], "usage": usage})


def test_a_json_answer_is_priced_from_its_usage_object() -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1000}}
    assert usage_object(answer(usage)) == usage
    assert answer_cost(answer(usage), 1200, 300, GPT_4O) == pytest.approx(0.00475)
    # Without prices of its own for the cache, the counts already read price it the same, without a second read.
    assert answer_cost(answer(usage), 1200, 300, PLAIN) == usage_cost(usage, PLAIN)


@pytest.mark.parametrize("body", [answer(None), b'{"usage": [1]}', b'{"usage": {"prompt', b"not json", b"{}"])
def test_an_answer_without_a_readable_usage_falls_back_to_its_counts(body: bytes) -> None:
    assert answer_cost(body, 100, 10, GPT_4O) == pytest.approx(100 * 2.5 * M + 10 * 10 * M)


def test_estimates_and_the_admission_maximum() -> None:
    assert estimate(1000, 500, PLAIN) == pytest.approx(1000 * 0.15 * M + 500 * 0.6 * M)
    assert estimate(-5, -1, PLAIN) == 0.0
    assert max_cost(GPT_4O, 100, 1024) == pytest.approx(100 * 2.5 * M + 1024 * 10 * M)
    assert max_cost(None, 100, 1024) == 0.0


def test_the_header() -> None:
    assert header(0.00475, False) == "0.004750"
    assert header(0.00475, True) == "~0.004750"


def test_anthropic_usage_as_its_adapter_reports_it_is_priced_with_cache_reads_and_writes() -> None:
    from gateway.providers.anthropic.response import usage as anthropic_usage

    reported = {
        "input_tokens": 500,
        "output_tokens": 400,
        "cache_read_input_tokens": 3000,
        "cache_creation_input_tokens": 1500,
    }
    # 500 x 3 + 3000 x 0.30 + 1500 x 3.75 + 400 x 15, per million: as the first table's Anthropic case
    assert usage_cost(anthropic_usage(reported), CLAUDE) == pytest.approx(0.0015 + 0.0009 + 0.005625 + 0.006)
