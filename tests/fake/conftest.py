from collections.abc import Iterator

import openai
import pytest

from gateway.fake.testing import FakeUpstream

KEY = "sk-fake"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeUpstream) -> FakeUpstream:
    """The module's fake, back at its start-up state."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=5) as c:
        yield c
