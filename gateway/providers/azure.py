"""Azure OpenAI: OpenAI's format, addressed by deployment URL with ``api-version`` and ``api-key`` header.

``api_version: v1`` selects Azure's newer ``/openai/v1`` surface, where the model travels in the body.
"""

from gateway.config.model import Account, Deployment, Secret
from gateway.providers import openai_compat as oc
from gateway.providers.base import Provider
from gateway.types import Endpoint


def _auth(secret: Secret | None) -> dict[str, str]:
    return {"api-key": secret.reveal()} if secret is not None else {}


def _url(account: Account, deployment: Deployment, endpoint: Endpoint) -> str:
    path = "chat/completions" if endpoint == "chat" else "embeddings"
    if account.api_version == "v1":
        return f"{account.base_url}/openai/v1/{path}"
    return f"{account.base_url}/openai/deployments/{deployment.upstream_model}/{path}?api-version={account.api_version}"


PROVIDER = Provider(
    kind="azure",
    default_base_url=None,
    auth=_auth,
    url=_url,
    chat_params=oc.chat_params(),
    embedding_params=oc.embedding_params(),
    unsupported=frozenset(),
    from_error=oc.from_error,
    to_request=oc.to_request,
    rate_limits=oc.rate_limits,
    stream_error=oc.stream_error,
    needs_api_version=True,
    default_api_version="2024-10-21",
)
