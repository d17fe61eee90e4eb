"""AWS Bedrock's Converse and ConverseStream APIs (``kind: bedrock``): Claude, Llama, Mistral and the other
models Bedrock serves, behind one request shape.

The request (``request``), the answer and usage (``response``), the binary event stream (``eventstream``:
framing; ``stream``: translation) and errors (``errors``) are pure modules; ``signing`` signs each request
with SigV4 (botocore, loaded only when a Bedrock account is configured). An account names its ``region``;
the endpoint is ``https://bedrock-runtime.{region}.amazonaws.com`` unless ``base_url`` says otherwise. A
Bedrock API key (``api_key_env``) is sent as a bearer token instead of signing.
"""

from gateway.config.model import Account, Deployment, Secret
from gateway.providers.base import Decoder, Param, Provider, errors_in_translation
from gateway.providers.bedrock import errors, request, response, signing, stream
from gateway.providers.bedrock.eventstream import EventStreamDecoder
from gateway.providers.openai_compat import CHAT_PARAMS
from gateway.types import Endpoint


def _auth(secret: Secret | None) -> dict[str, str]:
    return {"authorization": f"Bearer {secret.reveal()}"} if secret is not None else {}


def _url(account: Account, deployment: Deployment, endpoint: Endpoint) -> str:
    return f"{account.base_url}/model/{deployment.upstream_model}/converse"


def _stream_url(account: Account, deployment: Deployment) -> str:
    return f"{account.base_url}/model/{deployment.upstream_model}/converse-stream"


def _decoder(max_event: int) -> Decoder:
    return EventStreamDecoder(max_event)


PROVIDER: Provider = Provider(
    kind="bedrock",
    default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
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
    decoder=_decoder,
    stream_type="application/vnd.amazon.eventstream",
    stream_url=_stream_url,
    signer=signing.signer,
    needs_credential=False,
    aws=True,
    endpoints=frozenset({"chat"}),
)
