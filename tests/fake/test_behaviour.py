import pytest

from gateway.fake.behaviour import Behaviour, BehaviourError, Behaviours


def test_overrides_layer_on_the_default() -> None:
    behaviours = Behaviours(Behaviour(latency_ms=20))
    behaviours.update("gpt-4o", {"failure_rate": 1.0, "failure_kind": 429})
    behaviours.update("*", {"ttft_ms": 5})
    effective = behaviours.for_model("gpt-4o")
    assert (effective.latency_ms, effective.ttft_ms, effective.failure_rate) == (20, 5, 1.0)
    assert effective.failure_kind == "429"
    assert behaviours.for_model("other").failure_rate == 0
    assert set(behaviours.to_json()) == {"*", "gpt-4o"}
    behaviours.reset()
    assert behaviours.for_model("gpt-4o") == Behaviour(latency_ms=20)


@pytest.mark.parametrize(
    "fields",
    [
        {"latency": 5},
        {"failure_rate": 1.5},
        {"failure_kind": "teapot"},
        {"latency_ms": -1},
        {"default_completion_tokens": 1.5},
        {"context_window": 0},
        {"tokens_per_second": True},
    ],
)
def test_bad_fields_are_rejected(fields: dict[str, object]) -> None:
    behaviours = Behaviours()
    with pytest.raises(BehaviourError):
        behaviours.update("*", fields)
    with pytest.raises(BehaviourError):
        behaviours.update("m", fields)
    assert behaviours.overrides == {}
