"""The demo's failure knob (GATEWAY_DEMO_FAIL), parsed before anything starts."""

from __future__ import annotations

import pytest

from gateway.config.defaults import demo_upstream_models
from gateway.demo import DemoError, failures


def test_failures_name_deployments_and_reach_their_upstream_model() -> None:
    models = demo_upstream_models()
    assert failures("", models) == {}
    assert failures("azure-eastus/gpt-4o", models) == {"prod-gpt4o": {"failure_kind": "500", "failure_rate": 1.0}}
    assert failures(" groq/llama-3.1-8b-instant:429:0.5 , gemini/gemini-2.5-flash:timeout", models) == {
        "llama-3.1-8b-instant": {"failure_kind": "429", "failure_rate": 0.5},
        "gemini-2.5-flash": {"failure_kind": "timeout", "failure_rate": 1.0},
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [("openai-main/nope", "no demo deployment 'openai-main/nope'"), ("gemini/gemini-2.5-flash:500:x", "rate")],
)
def test_bad_failure_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(DemoError, match=message):
        failures(spec, demo_upstream_models())
