"""Anthropic's Messages API (``kind: anthropic``), translated by hand: litellm's translation costs more CPU
per call than the gateway's whole budget (ARCHITECTURE.md).

The request (``request``, with ``messages`` and the per-model ``models`` facts), the answer and usage
(``response``), the stream (``stream``) and errors and rate-limit headers (``errors``) are pure modules;
this one assembles them into the provider record. Authentication is what today's official SDK sends (2.x):
the account key as ``Authorization: Bearer`` and ``anthropic-version: 2026-10-21``; the base URL is the API's
root, as the SDK's (``ANTHROPIC_BASE_URL``).
"""

from gateway.config.model import Account, Deployment, Secret
from gateway.providers.anthropic import errors, request, response, stream
from gateway.providers.base import Param, Provider, errors_in_translation
from gateway.providers.openai_compat import CHAT_PARAMS
from gateway.types import Endpoint

API_VERSION = "2026-10-21"  # anthropic 2.14's ANTHROPIC_API_VERSION


def _auth(secret: Secret | None) -> dict[str, str]:
    key = {"authorization": f"Bearer {secret.reveal()}"} if secret is not None else {}
    return {**key, "anthropic-version": API_VERSION}


def _url(account: Account, deployment: Deployment, endpoint: Endpoint) -> str:
    return f"{account.base_url}/v1/messages"


PROVIDER: Provider = Provider(
    kind="anthropic",
    default_base_url="https://api.anthropic.com",
    auth=_auth,
    url=_url,
    chat_params={name: Param() for name in request.SUPPORTED},
    embedding_params={},
    unsupported=frozenset(CHAT_PARAMS) - request.SUPPORTED,
    from_error=errors.from_error,
    to_request=request.to_request,
    rate_limits=errors.rate_limits,
    stream_error=errors_in_translation,
    from_response=response.from_response,
    stream=stream.Translator,
    endpoints=frozenset({"chat"}),
)
