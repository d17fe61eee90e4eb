"""Failure classes: which failures fall back, retry on the same deployment, count against the circuit."""

from __future__ import annotations

import pytest

from gateway import failures
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamConnection,
    UpstreamPoolExhausted,
    UpstreamProtocol,
    UpstreamStatus,
    UpstreamTimeout,
)

DEFAULT = frozenset({"429", "5xx", "timeout", "connection", "context_length"})


@pytest.mark.parametrize(
    ("error", "names", "falls_back", "retried_here", "counted"),
    [
        (UpstreamStatus(503, "busy"), {"5xx", "503"}, True, True, True),
        (UpstreamStatus(429, "slow down"), {"429"}, True, False, False),
        (UpstreamStatus(400, "bad", code="context_length_exceeded"), {"context_length"}, True, False, False),
        (UpstreamStatus(400, "bad"), set(), False, False, False),
        (UpstreamStatus(401, "key"), set(), False, False, False),
        (UpstreamTimeout("slow"), {"timeout"}, True, True, True),
        (UpstreamConnection("reset"), {"connection"}, True, True, True),
        (UpstreamProtocol("html 200"), {"connection"}, True, True, True),
        (UpstreamPoolExhausted("pool"), {"connection"}, True, False, False),
        (InvalidRequest("n too large"), set(), False, False, False),
    ],
)
def test_classes(error: GatewayError, names: set[str], falls_back: bool, retried_here: bool, counted: bool) -> None:
    assert failures.triggers(error) == names
    assert failures.may_fall_back(error, DEFAULT) is falls_back
    assert failures.retry_here(error) is retried_here
    assert failures.counts_against_circuit(error) is counted


def test_a_policy_may_name_one_5xx_status() -> None:
    only_503 = frozenset({"503"})
    assert failures.may_fall_back(UpstreamStatus(503, "busy"), only_503)
    assert not failures.may_fall_back(UpstreamStatus(500, "oops"), only_503)


@pytest.mark.parametrize(("item", "name"), [(503, "503"), ("429", "429"), ("5xx", "5xx"), (404, None), (True, None)])
def test_parse_trigger(item: object, name: str | None) -> None:
    assert failures.parse_trigger(item) == name


def test_a_provider_out_of_room_cools_down() -> None:
    assert failures.cools_down(UpstreamStatus(429, "slow down"))
    assert failures.cools_down(UpstreamStatus(529, "overloaded"))  # Anthropic's
    assert not failures.cools_down(UpstreamStatus(503, "busy")) and not failures.cools_down(UpstreamTimeout("slow"))
