import socket
import threading
import warnings

import httpx
import openai
import pytest

from gateway.fake.behaviour import BehaviourError
from gateway.fake.testing import FakeUpstream


def test_start_and_stop_cleanly() -> None:
    threads = threading.active_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FakeUpstream(api_key=None, rpm=10, latency_ms=1) as fake:
            assert fake.url.startswith("http://127.0.0.1:") and fake.base_url == fake.url + "/v1"
            with openai.OpenAI(base_url=fake.base_url, api_key="anything") as client:
                assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            url = fake.url
    assert threading.active_count() == threads
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_fake/stats")
    with pytest.raises(RuntimeError):
        _ = fake.url


def test_stops_with_requests_still_stalled() -> None:
    with FakeUpstream(failure_kind="stall", failure_rate=1.0) as fake:
        with openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0, timeout=10) as client:
            stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
            fake.stop()  # the fake goes away while the client still waits for its first chunk
            with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError)):
                list(stream)


def test_a_busy_port_raises_in_the_caller() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            FakeUpstream(port=taken.getsockname()[1]).start()


def test_bad_behaviour_is_refused_up_front() -> None:
    with pytest.raises(BehaviourError):
        FakeUpstream(failure_kind="boom")
    with pytest.raises(TypeError):
        FakeUpstream(no_such_field=1)
