from typing import Any

import httpx
import pytest

from gateway.fake.testing import FakeUpstream


def test_behaviour_round_trip(fake: FakeUpstream) -> None:
    result = fake.configure(model="gpt-4o", latency_ms=5, fail_next=1)
    assert result["behaviours"]["gpt-4o"]["latency_ms"] == 5
    assert result["behaviours"]["*"]["latency_ms"] == 0
    assert result["fail_next"] == {"gpt-4o": 1}
    current = httpx.get(fake.url + "/_fake/behaviour").json()
    assert current == result
    fake.reset()
    assert httpx.get(fake.url + "/_fake/behaviour").json() == {
        "behaviours": {"*": current["behaviours"]["*"]},
        "fail_next": {},
    }


@pytest.mark.parametrize(
    "body",
    [{"failure_kind": "boom"}, {"nope": 1}, {"model": 5}, {"fail_next": "x"}, [1]],
)
def test_bad_behaviour_is_a_400(fake: FakeUpstream, body: Any) -> None:
    response = httpx.post(fake.url + "/_fake/behaviour", json=body)
    assert response.status_code == 400 and response.json()["error"]["message"]
    assert httpx.post(fake.url + "/_fake/behaviour", content=b"{").status_code == 400


def test_limits(fake: FakeUpstream) -> None:
    assert fake.set_limits(rpm=5) == {"rpm": 5, "tpm": None}
    assert httpx.post(fake.url + "/_fake/limits", json={"tpm": 9}).json() == {"rpm": 5, "tpm": 9}
    assert httpx.post(fake.url + "/_fake/limits", json={"rpm": 0}).status_code == 400
    fake.reset()
    assert fake.set_limits() == {"rpm": None, "tpm": None}


def test_control_requests_are_not_counted(fake: FakeUpstream) -> None:
    fake.configure(latency_ms=1)
    fake.stats()
    stats = fake.stats()
    assert stats["requests_total"] == 0 and stats["last_requests"] == []
    assert set(stats) == {
        "requests_total",
        "requests_by_model",
        "requests_by_status",
        "rate_limited",
        "limit_rejections",
        "failures_injected",
        "prompt_tokens",
        "completion_tokens",
        "disconnects",
        "in_flight",
        "max_in_flight",
        "last_requests",
    }
