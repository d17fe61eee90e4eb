import pytest

from gateway.fake.paths import Route, match_route


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/chat/completions", Route("chat", "POST")),
        ("/openai/v1/chat/completions", Route("chat", "POST")),
        ("/v1beta/openai/chat/completions", Route("chat", "POST")),
        ("/openai/deployments/gpt-4o/chat/completions", Route("chat", "POST", azure=True, model="gpt-4o")),
        ("/east/openai/deployments/ada/embeddings", Route("embeddings", "POST", azure=True, model="ada")),
        ("/v1/embeddings", Route("embeddings", "POST")),
        ("/v1/models", Route("models", "GET")),
        ("/v1beta/openai/models", Route("models", "GET")),
        ("/openai/models", Route("models", "GET", azure=True)),
        ("/v1/models/gpt-4o", Route("model", "GET", model="gpt-4o")),
        ("/v1/messages", Route("messages", "POST")),
        ("/stream/v1/messages", Route("messages", "POST")),
        ("/model/us.anthropic.claude-x-v1:0/converse", Route("converse", "POST", model="us.anthropic.claude-x-v1:0")),
        ("/model/us.anthropic.claude-x-v1%3A0/converse", Route("converse", "POST", model="us.anthropic.claude-x-v1:0")),
        ("/model/meta.llama3/converse-stream", Route("converse-stream", "POST", model="meta.llama3")),
        ("/v1/completions", None),
        ("/", None),
    ],
)
def test_match_route(path: str, route: Route | None) -> None:
    assert match_route(path) == route
