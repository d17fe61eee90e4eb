"""Which API a request path names, under any prefix, so one fake can stand in for several providers. Pure.

/v1/chat/completions                              -> chat        (OpenAI)
/openai/v1/chat/completions                       -> chat        (Groq)
/v1beta/openai/chat/completions                   -> chat        (Gemini's OpenAI compatibility)
/openai/deployments/gpt-4o/chat/completions       -> chat, Azure, model "gpt-4o"
/openai/deployments/ada/embeddings                -> embeddings, Azure, model "ada"
/v1/models, /v1/models/gpt-4o                     -> models, model
/v1/messages                                      -> messages    (Anthropic)
/model/anthropic.claude-x-v1%3A0/converse         -> converse, model "anthropic.claude-x-v1:0"   (Bedrock)
/model/meta.llama3-70b/converse-stream            -> converse-stream, model "meta.llama3-70b"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_AZURE = re.compile(r"(?:/.*)?/openai/deployments/(?P<deployment>[^/]+)/(?P<api>chat/completions|embeddings)")
_MODEL = re.compile(r".*/models/(?P<model>[^/]+)")
_CONVERSE = re.compile(r"(?:/.*)?/model/(?P<model>[^/]+)/(?P<api>converse|converse-stream)")


@dataclass(frozen=True)
class Route:
    kind: str  # "chat", "embeddings", "models", "model", "messages", "converse" or "converse-stream"
    method: str  # the HTTP method the API answers
    azure: bool = False
    model: str | None = None  # the Azure deployment, or the model of GET /models/{model}


def match_route(path: str) -> Route | None:
    azure = _AZURE.fullmatch(path)
    if azure:
        kind = "chat" if azure["api"] == "chat/completions" else "embeddings"
        return Route(kind, "POST", azure=True, model=azure["deployment"])
    converse = _CONVERSE.fullmatch(path)
    if converse:  # the model id travels percent-encoded (":" as %3A); aiohttp hands it over decoded
        return Route(converse["api"], "POST", model=unquote(converse["model"]))
    if path.endswith("/v1/messages"):
        return Route("messages", "POST")
    if path.endswith("/chat/completions"):
        return Route("chat", "POST")
    if path.endswith("/embeddings"):
        return Route("embeddings", "POST")
    if path.endswith("/models"):
        # Azure lists models at /openai/models; Groq's /openai/v1/models and Gemini's
        # /v1beta/openai/models carry a version segment and use bearer auth
        return Route("models", "GET", azure=path.endswith("/openai/models") and "/v1" not in path)
    model = _MODEL.fullmatch(path)
    if model:
        return Route("model", "GET", model=model["model"])
    return None
